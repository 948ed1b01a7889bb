"""Topic names, the PostgreSQL schema and the event-type <-> topic mapping, shared by the service and
the driver; topic creation and deletion, true end offsets, group lag.

Every name a run uses comes from one `Names(namespace)`: namespace "" is the seed's names, any other
namespace prefixes every topic and gives the run a PostgreSQL schema of its own, so two runs on one
broker and one database never see each other's events, outcomes or rows.
"""

from __future__ import annotations

import logging
import re
import zlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

log = logging.getLogger(__name__)

#: event record name -> topic (the seed's names, namespace "")
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
#: the seed's PostgreSQL schema; it also holds the schema registry table every namespace shares
BASE_SCHEMA = "bancaire"

#: a namespace: lowercase letters, digits and '-', so it is valid in a topic name as it is and, with
#: '-' as '_', in an unquoted PostgreSQL identifier ("bancaire_" + 54 chars is PostgreSQL's 63)
_NAMESPACE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?")


class Names:
    """The topics, consumer group base and PostgreSQL schema of one namespace.

    `schema` is an unquoted-safe identifier: the namespace with '-' as '_' (the namespace holds no
    '_', so two namespaces never share a schema).
    """

    __slots__ = ("all", "dlq", "events", "group", "inputs", "namespace", "outcomes", "schema", "virement_recu")

    def __init__(self, namespace: str = "") -> None:
        if namespace and not _NAMESPACE.fullmatch(namespace):
            raise ValueError(
                f"bank namespace {namespace!r}: 1-48 of lowercase letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
        self.namespace = namespace
        prefix = f"{namespace}." if namespace else ""
        self.events: dict[str, str] = {event: prefix + topic for event, topic in EVENT_TOPICS.items()}
        self.inputs: tuple[str, ...] = tuple(self.events.values())
        self.outcomes = prefix + OUTCOMES
        self.dlq = prefix + DLQ
        self.virement_recu = prefix + VIREMENT_RECU
        self.all: tuple[str, ...] = (*self.inputs, self.virement_recu, self.dlq, self.outcomes)
        self.schema = f"{BASE_SCHEMA}_{namespace.replace('-', '_')}" if namespace else BASE_SCHEMA
        #: consumer group base name (a reset run adds a suffix of its own)
        self.group = prefix + "bancaire"

    def subject_for(self, event: str) -> str:
        """Confluent TopicNameStrategy: `<topic>-value`."""
        return f"{self.events[event]}-value"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Names) and other.namespace == self.namespace

    def __hash__(self) -> int:
        return hash(self.namespace)

    def __repr__(self) -> str:
        return f"Names({self.namespace!r})"


SEED = Names("")


def namespace_from(run_name: str, unique: str = "", max_len: int = 24) -> str:
    """A namespace made of a run's name (its directory's last component): lowercase letters, digits
    and '-', at most `max_len`. A name too long keeps its start and gets a hash of the whole, so two
    runs whose names differ only past the cut (`...-bank-smoke`, `...-bank-smoke-2`) still differ.
    With `unique` (e.g. the run directory's full path), the hash is of that, and always added."""
    safe = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", run_name.lower())).strip("-")
    if not unique and safe and len(safe) <= max_len:
        return safe
    digest = f"{zlib.crc32((unique or run_name).encode()):08x}"
    head = safe[: max_len - len(digest) - 1].strip("-")
    return f"{head}-{digest}" if head else digest


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


def own_partitions(index: int, count: int, n_partitions: int) -> list[int]:
    """The partitions writer `index` of `count` appends to when it has no key to keep in order:
    every p with p % count == index (one shared partition when there are fewer than writers)."""
    mine = [p for p in range(n_partitions) if p % count == index]
    return mine or [index % n_partitions]


def subject_for(event: str) -> str:
    """Confluent TopicNameStrategy for the seed's names: `<topic>-value`."""
    return SEED.subject_for(event)


async def ensure_topics(
    bootstrap: str,
    partitions: int,
    writers: int = 1,
    names: Names = SEED,
    outcome_partitions: int | None = None,
) -> None:
    """Create the namespace's topics that do not exist yet; existing ones are left as they are.

    The DLQ gets at least one partition per instance (`writers`): each instance appends to a
    partition of its own (see `own_partition`). The outcome topic gets `outcome_partitions`
    (default max(6, writers)), which the instances share out (see `own_partitions`).
    """
    n_out = outcome_partitions or max(6, writers)
    sizes = {names.dlq: max(partitions, writers), names.outcomes: max(n_out, writers)}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t, num_partitions=sizes.get(t, partitions), replication_factor=1)
            for t in names.all
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


async def delete_topics(bootstrap: str, names: Names) -> list[str]:
    """Delete a namespace's topics (never the seed's, which other producers may use); returns those
    deleted. Why: the embedded broker keeps every record in memory until its topic goes."""
    if not names.namespace:
        raise ValueError("the seed's topics (namespace '') are never deleted")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        present = [t for t in names.all if t in set(await admin.list_topics())]
        if present:
            try:
                await admin.delete_topics(present)
            except UnknownTopicOrPartitionError:
                pass
            log.info("deleted topics %s", present)
        return present
    finally:
        await admin.close()


async def input_partitions(bootstrap: str, names: Names = SEED) -> list[TopicPartition]:
    """Every partition of the namespace's input topics, as the broker reports them."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await c.start()
    try:
        await c.topics()
        return [TopicPartition(t, p) for t in names.inputs for p in sorted(c.partitions_for_topic(t) or ())]
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


async def end_offsets(bootstrap: str, names: Names = SEED) -> dict[tuple[str, int], int]:
    """The true end offset of every input partition of the namespace.

    Read, not just asked: Tansu answers ListOffsets(latest) with the base offset of the last
    batch + 1, short of the end when that batch holds several records. So read from the reported
    end until nothing more comes and take the last offset seen + 1.
    """
    tps = await input_partitions(bootstrap, names)
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
