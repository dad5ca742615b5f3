//! A tiny HTTP/1.1 file server for tests: serves the files under a folder the test wrote
//! itself, plus routes that misbehave on purpose. Shared by the data crate's tests and the
//! workspace's (`#[path]`-included).
//!
//! - `GET /<path>`: the file `<root>/<path>` (404 when absent);
//! - `GET /__redirect/<path>`: 302 to `/<path>`;
//! - `GET /__truncate/<path>`: announces the file's length, sends half, closes;
//! - `GET /__html/<path>`: 200 with an HTML page instead of the file.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct FixtureServer {
    pub base: String,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    handle: Option<JoinHandle<()>>,
}

impl FixtureServer {
    pub fn start(root: &Path) -> FixtureServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, root) = (requests.clone(), stop.clone(), root.to_path_buf());
        let handle = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    r.fetch_add(1, Ordering::SeqCst);
                    let _ = serve(stream, &root);
                }
            }
        });
        FixtureServer {
            base: format!("http://{addr}"),
            requests,
            stop,
            addr,
            handle: Some(handle),
        }
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Stops listening: later requests are refused (connection refused).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(mut stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut line = String::new();
    let mut reader = BufReader::new(stream.try_clone()?);
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let path = path.split('?').next().unwrap_or("").trim_start_matches('/');
    let respond = |stream: &mut TcpStream, status: &str, extra: &str, body: &[u8], send: usize| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(&body[..send.min(body.len())])?;
        stream.flush()
    };
    let file = |p: &str| -> Option<Vec<u8>> { std::fs::read(root.join(p)).ok() };
    if let Some(rest) = path.strip_prefix("__redirect/") {
        let loc = format!("Location: /{rest}\r\n");
        return respond(&mut stream, "302 Found", &loc, b"", 0);
    }
    if let Some(rest) = path.strip_prefix("__truncate/") {
        if let Some(b) = file(rest) {
            return respond(&mut stream, "200 OK", "", &b, b.len() / 2);
        }
    }
    if path.starts_with("__html/") {
        let b = b"<!DOCTYPE html><html><body>Rate limit exceeded</body></html>";
        return respond(
            &mut stream,
            "200 OK",
            "Content-Type: text/html\r\n",
            b,
            b.len(),
        );
    }
    match file(path) {
        Some(b) => respond(&mut stream, "200 OK", "", &b, b.len()),
        None => respond(&mut stream, "404 Not Found", "", b"not found", 9),
    }
}

/// Writes `body` at `<root>/<rel>`, creating folders.
pub fn put(root: &Path, rel: &str, body: &[u8]) -> PathBuf {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, body).unwrap();
    p
}
