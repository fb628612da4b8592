//! upsguard: the std service and CLI around `upsguard-core`.
