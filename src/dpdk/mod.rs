//! Safe DPDK wrappers (placeholder until the foundation issue lands).
