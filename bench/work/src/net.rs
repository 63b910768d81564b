//! Network: a TCP sink (server) and its pusher, and HTTP clients for
//! request latency and connections per second.

use crate::{Phase, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Serves forever on `port`: each connection is read to its end, then
/// answered with the number of bytes received, then closed.
pub fn sink(port: u64) -> Result<()> {
    let listener =
        TcpListener::bind(("0.0.0.0", port as u16)).map_err(|e| format!("binding {port}: {e}"))?;
    let mut buf = vec![0u8; 1 << 16];
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let mut total = 0u64;
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        let _ = conn.write_all(total.to_string().as_bytes());
    }
    Ok(())
}

/// Connects to `addr`, retrying for up to 30 s (a server may be starting).
fn connect(addr: &str) -> Result<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() > deadline => return Err(format!("connecting {addr}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Pushes `mib` MiB to a sink at `addr` and waits for its count, which must
/// match. The time runs from the first byte sent to the count received.
pub fn tcp_push(addr: &str, mib: u64) -> Result<()> {
    let mut s = connect(addr)?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let data = vec![0x5Au8; 1 << 20];
    let phase = Phase::begin("tcp_push");
    for _ in 0..mib {
        s.write_all(&data).map_err(|e| format!("sending: {e}"))?;
    }
    s.shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(|e| format!("reading the count: {e}"))?;
    if reply.trim() != (mib << 20).to_string() {
        return Err(format!("the sink counted {reply:?}, sent {}", mib << 20));
    }
    phase.end(mib, mib << 20, format!("received={}", reply.trim()));
    Ok(())
}

/// One `GET /` on a new connection; the response must be a 200.
fn get(addr: &str) -> Result<()> {
    let mut s = connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)
        .map_err(|e| format!("reading the response: {e}"))?;
    if !response.starts_with(b"HTTP/1.") || !response.windows(5).any(|w| w == b" 200 ") {
        let head = String::from_utf8_lossy(&response[..response.len().min(80)]).into_owned();
        return Err(format!("not a 200: {head:?}"));
    }
    Ok(())
}

/// `n` requests one after another, each on a new connection.
pub fn http_get(addr: &str, n: u64) -> Result<()> {
    get(addr)?; // the server is up
    let phase = Phase::begin("http_get");
    for _ in 0..n {
        get(addr)?;
    }
    phase.end(n, 0, format!("ok={n}"));
    Ok(())
}

/// `n` requests spread over `threads` concurrent clients, each on a new
/// connection: connections per second under load.
pub fn http_load(addr: &str, n: u64, threads: u64) -> Result<()> {
    get(addr)?;
    let threads = threads.max(1);
    let phase = Phase::begin("http_load");
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let addr = addr.to_string();
            let share = n / threads + u64::from(t < n % threads);
            std::thread::spawn(move || -> Result<u64> {
                for _ in 0..share {
                    get(&addr)?;
                }
                Ok(share)
            })
        })
        .collect();
    let mut done = 0;
    for h in handles {
        done += h
            .join()
            .map_err(|_| "a client thread panicked".to_string())??;
    }
    phase.end(done, 0, format!("ok={done}"));
    Ok(())
}
