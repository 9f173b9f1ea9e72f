//! Generated DPDK bindings (placeholder until the foundation issue lands).
