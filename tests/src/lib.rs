//! notif-tests: end-to-end and system property suites over real sockets.
//!
//! Not implemented yet (issue 7): the suites land with the server.
