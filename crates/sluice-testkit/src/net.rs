//! Ports for servers a test starts.

/// A TCP port on 127.0.0.1 that was free a moment ago (from the kernel's ephemeral range).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
