//! Name resolution with a deadline.
//!
//! Why: `getaddrinfo` has no timeout of its own, and a resolver that does not
//! answer (no network, a dead DNS server) holds the calling thread for tens of
//! seconds. Every connect in onair (an RTMP ingest, a remote X display) must
//! be bounded, so the lookup runs on a short-lived thread and the caller
//! waits at most its timeout; a lookup still running after that is abandoned
//! (its thread ends when the resolver gives up).

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Duration;

/// Resolves `host:port`, waiting at most `timeout`. An IP address literal
/// is returned at once, without a thread.
pub fn resolve(host: &str, port: u16, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("onair-resolve".into())
        .spawn(move || {
            let _ = tx.send(
                (name.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>()),
            );
        })?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}: no addresses"),
        )),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{host}: name resolution took longer than {timeout:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_localhost_resolve() {
        let a = resolve("127.0.0.1", 80, Duration::from_secs(1)).expect("literal");
        assert_eq!(a, vec![SocketAddr::from(([127, 0, 0, 1], 80))]);
        let a = resolve("localhost", 6000, Duration::from_secs(5)).expect("localhost");
        assert!(a.iter().all(|s| s.ip().is_loopback() && s.port() == 6000));
    }

    #[test]
    fn an_unknown_name_is_an_error_not_a_hang() {
        let r = resolve("no-such-host.invalid", 1, Duration::from_secs(5));
        assert!(r.is_err());
    }
}
