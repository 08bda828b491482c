//! The listening sockets. Streamed answers are many small writes: with Nagle's algorithm on, each
//! waits for the client's delayed ACK (about 40 ms). TCP_NODELAY set on the listening socket is
//! inherited by every accepted connection on Linux, so it is set there. With several serving
//! workers, each gets its own socket on the same address (`SO_REUSEPORT`: the kernel spreads new
//! connections between them), so no accept is handed from one thread to another.

use std::net::{SocketAddr, ToSocketAddrs};

use salvo::conn::tcp::TcpAcceptor;

/// Binds `host:port` with TCP_NODELAY and a deep backlog; returns the acceptor and its address.
pub fn bind(addr: &str) -> Result<(TcpAcceptor, SocketAddr), String> {
    let (mut sockets, bound) = bind_sockets(addr, 1)?;
    let socket = sockets
        .pop()
        .ok_or_else(|| format!("cannot listen on {addr}"))?;
    Ok((acceptor(socket, addr)?, bound))
}

/// Binds `count` sockets on `host:port` (port 0: one free port for all of them). They are plain
/// sockets: each worker turns its own into an acceptor inside its runtime ([`acceptor`]), so its
/// readiness events arrive on that worker's thread.
pub fn bind_sockets(
    addr: &str,
    count: usize,
) -> Result<(Vec<std::net::TcpListener>, SocketAddr), String> {
    let mut target = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))?;
    let shared = count > 1;
    if shared && target.port() != 0 {
        // SO_REUSEPORT would let this group join another process's (a second gateway started on
        // the same port by the same user) and split its traffic: check the port is free first.
        listen(target, false).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    }
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let socket = listen(target, shared).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        // The first socket fixed the port (it may have been 0): the others share it.
        target = socket.local_addr().map_err(|e| e.to_string())?;
        sockets.push(socket);
    }
    Ok((sockets, target))
}

fn listen(target: SocketAddr, shared: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    if shared {
        socket.set_reuse_port(true)?;
    }
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&target.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// One bound socket as salvo's acceptor, registered with the calling runtime.
pub fn acceptor(socket: std::net::TcpListener, addr: &str) -> Result<TcpAcceptor, String> {
    let listener = tokio::net::TcpListener::from_std(socket)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    TcpAcceptor::try_from(listener).map_err(|e| format!("cannot listen on {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_socket_listens_on_the_one_port_picked() {
        let (sockets, bound) = bind_sockets("127.0.0.1:0", 3).expect("bind");
        assert_eq!(sockets.len(), 3);
        assert_ne!(bound.port(), 0);
        for socket in &sockets {
            assert_eq!(socket.local_addr().expect("address"), bound);
        }
        // The kernel hands each connection to one of them.
        for _ in 0..6 {
            std::net::TcpStream::connect(bound).expect("connect");
        }
    }

    #[test]
    fn a_port_another_gateway_listens_on_is_refused_not_shared() {
        let (_first, bound) = bind_sockets("127.0.0.1:0", 2).expect("bind");
        let refused = bind_sockets(&bound.to_string(), 2).expect_err("port taken");
        assert!(refused.contains("in use"), "{refused}");
    }

    #[test]
    fn a_port_in_use_by_another_socket_is_refused_with_its_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("address").to_string();
        let refused = bind_sockets(&addr, 2).expect_err("port taken");
        assert!(
            refused.starts_with(&format!("cannot listen on {addr}")),
            "{refused}"
        );
    }
}
