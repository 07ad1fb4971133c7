//! A small HTTP/1.1 load generator (keep-alive GETs over raw TCP, one request in flight per
//! connection, like `wrk`), so that the client costs little next to the server it measures.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::stats::Summary;

/// Throughput and latency of one route.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub requests: u64,
    pub seconds: f64,
    /// Latencies in microseconds.
    pub latency: Summary,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests, "seconds": self.seconds,
            "requests_per_second": self.per_second(),
            "latency_us": self.latency.to_json(),
        })
    }
}

/// `GET path` as fast as `connections` connections allow for `duration` (after one second of
/// warm-up that is not counted). Every answer must be a 200.
///
/// Each connection is a thread with a blocking socket: a write and a read per request are the
/// fewest system calls a client can make, so the generator takes as little of the machine's
/// CPU as possible from the server it measures (both share it).
pub async fn run(
    port: u16,
    path: &str,
    token: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let request = format!(
        "GET /_matrix/maubot/v1{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    );
    let warm_up = Instant::now() + Duration::from_secs(1);
    let end = warm_up + duration;
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let request = request.clone().into_bytes();
            std::thread::spawn(move || connection(port, &request, warm_up, end))
        })
        .collect();
    let latencies = tokio::task::spawn_blocking(move || {
        let mut latencies = Vec::new();
        for thread in threads {
            let joined = thread
                .join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))?;
            latencies.extend(joined?);
        }
        anyhow::Ok(latencies)
    })
    .await??;
    Ok(LoadResult {
        requests: latencies.len() as u64,
        seconds: duration.as_secs_f64(),
        latency: Summary::of(latencies.into_iter().map(f64::from).collect()),
    })
}

/// One connection's latencies (µs) of the requests that started after `measure_from`.
fn connection(
    port: u16,
    request: &[u8],
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<Vec<u32>> {
    let mut latencies = Vec::with_capacity(1 << 18);
    let mut stream = connect(port)?;
    let mut buffer = Vec::with_capacity(1 << 16);
    loop {
        let started = Instant::now();
        if started >= end {
            return Ok(latencies);
        }
        stream.write_all(request)?;
        let keep_alive = read_response(&mut stream, &mut buffer)?;
        if started >= measure_from {
            let micros = started.elapsed().as_micros();
            latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
        }
        if !keep_alive {
            stream = connect(port)?;
        }
    }
}

fn connect(port: u16) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads one response with a `Content-Length` body; whether the connection stays open.
fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> anyhow::Result<bool> {
    buffer.clear();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buffer[..head_end]).context("response head")?;
    let status = head.get(9..12).context("short status line")?;
    if status != "200" {
        bail!("answered {status}: {head}");
    }
    let mut length = None;
    let mut close = false;
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>()?);
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let length = length.context("a response without Content-Length")?;
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("the server closed the connection mid-body");
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Ok(!close)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
