//! A subset of the Hurl file format (being built).
