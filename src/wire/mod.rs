//! The whoopsie wire format: untrusted BSON decoding and report <-> BSON.
