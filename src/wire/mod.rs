//! wire (placeholder, filled by its issue).
