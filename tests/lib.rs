//! Tessera's end-to-end tests live in `e2e/` as one test binary; this
//! library is empty on purpose (a package needs a target).
