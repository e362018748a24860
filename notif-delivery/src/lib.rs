//! notif-delivery: the APNs, FCM, WNS and Web Push adapters and the dispatcher.
//!
//! Not implemented yet (issue 5): this crate has no public items so far.
