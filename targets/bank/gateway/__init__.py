"""The bank pipeline's Gateway (seed 003, phase 5): one HTTP front for the bank REST API and the
simulation control API, and a WebSocket hub that streams the bank's Kafka events to subscribers.

Server: uvicorn (already the server of the bank and cart services) running a raw ASGI app, with
its `websockets-sansio` WebSocket protocol: the `websockets` library's sans-I/O state machine
(RFC 6455, maintained with uvicorn's own tests), on uvloop and httptools. Why: an asyncio server
is what lets one process hold many idle subscribers cheaply; a raw ASGI `send` goes straight into
the protocol (one frame built, one transport write, no framework per message), which is the
fan-out's whole cost; and its flow control (`send` waits while the socket's buffer is full) is
what lets the hub see a slow client as a queue that fills up. per-message deflate is off: it
would compress every message once per subscriber. Client side (proxy, health probes,
`subscriber.py`): aiohttp, the project's HTTP client already, whose WebSocket reader is compiled.

Pieces: `hub` (subscriptions, bounded queues, slow-client drops), `streamer` (Kafka -> hub),
`proxy` (bank REST API), `simulation` + `simrun` (runs of the bank workload through the harness),
`web` (trace context, CORS), `app` (routes), `server` (command line), `subscriber` (the client a
driver uses to measure event -> subscriber delivery).
"""
