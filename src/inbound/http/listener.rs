//! The listening socket. Streamed answers are many small writes: with Nagle's algorithm on, each
//! waits for the client's delayed ACK (about 40 ms). TCP_NODELAY set on the listening socket is
//! inherited by every accepted connection on Linux, so it is set there.

use std::net::{SocketAddr, ToSocketAddrs};

use salvo::conn::tcp::TcpAcceptor;

/// Binds `host:port` with TCP_NODELAY and a deep backlog; returns the acceptor and its address.
pub fn bind(addr: &str) -> Result<(TcpAcceptor, SocketAddr), String> {
    let target = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::STREAM,
        None,
    )
    .map_err(|e| format!("cannot open a socket for {addr}: {e}"))?;
    let setup = || -> std::io::Result<()> {
        socket.set_reuse_address(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&target.into())?;
        socket.listen(4096)
    };
    setup().map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let listener = tokio::net::TcpListener::from_std(socket.into())
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let acceptor =
        TcpAcceptor::try_from(listener).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    Ok((acceptor, bound))
}
