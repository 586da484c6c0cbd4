//! Bencode output (BEP 3). Being written.
