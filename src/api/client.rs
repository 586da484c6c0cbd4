//! `shoal api …`: the management API from the command line.
