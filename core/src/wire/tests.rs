//! Parser tests against real captures.
