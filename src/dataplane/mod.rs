//! dataplane (placeholder, filled by its issue).
