//! Signed hook bundles and the key ring that verifies them.
