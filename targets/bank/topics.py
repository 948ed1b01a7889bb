"""Topic names and the event-type <-> topic mapping, shared by the service and the driver."""

from __future__ import annotations

import logging
import zlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)

#: event record name -> (topic, schema file stem)
EVENT_TOPICS: dict[str, str] = {
    "CompteOuvert": "bancaire.compte.ouvert",
    "CompteFerme": "bancaire.compte.ferme",
    "DepotEffectue": "bancaire.depot.effectue",
    "RetraitEffectue": "bancaire.retrait.effectue",
    "VirementEmis": "bancaire.virement.emis",
}
SCHEMA_FILES: dict[str, str] = {
    "CompteOuvert": "compte_ouvert",
    "CompteFerme": "compte_ferme",
    "DepotEffectue": "depot_effectue",
    "RetraitEffectue": "retrait_effectue",
    "VirementEmis": "virement_emis",
}
#: what the service consumes
INPUT_TOPICS: tuple[str, ...] = tuple(EVENT_TOPICS.values())
#: in the seed's topic list; this service does not emit it, it is created so consumers can subscribe
VIREMENT_RECU = "bancaire.virement.recu"
DLQ = "system.dlq"
OUTCOMES = "bancaire.outcomes"
ALL_TOPICS: tuple[str, ...] = (*INPUT_TOPICS, VIREMENT_RECU, DLQ, OUTCOMES)

#: record headers
H_OP_ID = "edabench-op-id"
H_ORIGIN = "edabench-origin"
H_DLQ_REASON = "dlq-reason"
#: what exactly was wrong, for a person (the field, its length, the database's message)
H_DLQ_DETAIL = "dlq-detail"
H_DLQ_TOPIC = "dlq-source-topic"
H_DLQ_PARTITION = "dlq-source-partition"
H_DLQ_OFFSET = "dlq-source-offset"


def own_partition(index: int, count: int, n_partitions: int, key: bytes | None = None) -> int:
    """A partition that only writer `index` of `count` appends to (keyed within its share).

    Why: Tansu 0.6 can hide records from a reader that is live while two producers append to
    the same partition concurrently (a later append becomes visible first; the reader moves past
    the earlier one). Giving every writer its own partitions avoids concurrent appends; a key
    still maps to one partition, so per-account order holds.
    """
    if n_partitions < count:  # not enough partitions to go round: share (and accept the risk)
        return (zlib.crc32(key) if key else index) % n_partitions
    share = n_partitions // count
    return index + count * ((zlib.crc32(key) % share) if key else 0)


def subject_for(event: str) -> str:
    """Confluent TopicNameStrategy: `<topic>-value`."""
    return f"{EVENT_TOPICS[event]}-value"


async def ensure_topics(
    bootstrap: str, partitions: int, writers: int = 1, topics: tuple[str, ...] = ALL_TOPICS
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are.

    The service's output topics (outcomes, DLQ) get at least one partition per instance
    (`writers`): each instance appends to a partition of its own (see `own_partition`).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                t, num_partitions=max(partitions, writers) if t in (OUTCOMES, DLQ) else partitions, replication_factor=1
            )
            for t in topics
            if t not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", [t.name for t in missing])
    finally:
        await admin.close()


async def input_partitions(bootstrap: str) -> list[TopicPartition]:
    """Every partition of the input topics, as the broker reports them."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await c.start()
    try:
        await c.topics()
        return [TopicPartition(t, p) for t in INPUT_TOPICS for p in sorted(c.partitions_for_topic(t) or ())]
    finally:
        await c.stop()


async def group_lag(probe: AIOKafkaConsumer, tps: list[TopicPartition]) -> int:
    """Records of `tps` not yet committed by the probe's group. The probe has the group's id but
    never subscribes, so it reads committed offsets without joining (admin offset listing is not
    understood by every broker). On Tansu the end offsets it asks for may fall short by part of
    the last batch (see `end_offsets`), so the lag there is a slight under-estimate."""
    ends = await probe.end_offsets(tps)
    lag = 0
    for tp in tps:
        committed = await probe.committed(tp)
        lag += max(0, ends[tp] - (committed or 0))
    return lag


async def end_offsets(bootstrap: str) -> dict[tuple[str, int], int]:
    """The true end offset of every input partition.

    Read, not just asked: Tansu answers ListOffsets(latest) with the base offset of the last
    batch + 1, short of the end when that batch holds several records. So read from the reported
    end until nothing more comes and take the last offset seen + 1.
    """
    tps = await input_partitions(bootstrap)
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await c.start()
    try:
        ends = dict(await c.end_offsets(tps))
        c.assign(tps)
        for tp, off in ends.items():
            c.seek(tp, off)
        for _ in range(100):  # bounded: a topic still being written never "ends"
            batch = await c.getmany(timeout_ms=300)
            if not batch:
                break
            for tp, recs in batch.items():
                ends[tp] = max(ends[tp], recs[-1].offset + 1)
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}
    finally:
        await c.stop()
