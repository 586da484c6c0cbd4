//! HTTP request heads and tracker queries (BEP 3, 7, 23, 48). Being written.
