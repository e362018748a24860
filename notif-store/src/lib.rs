//! notif-store: the sled and in-memory stores. Not implemented yet (issue 3).
