//! `ringwire-loadgen`: drives load against a WebSocket server and reports latency and throughput.

pub mod report;
