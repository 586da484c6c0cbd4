//! HTTP announce and scrape handling (BEP 3, 7, 23, 48). Being written.
