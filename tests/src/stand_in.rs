//! Small HTTP servers on loopback that stand in for AWS endpoints moto lacks
//! (the Redshift Serverless API, the container credentials endpoint) or that
//! sit in front of moto to record what pghook sent: every request is kept,
//! with its signing key id, so a test can count STS calls and see which
//! credentials signed a call.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request a stand-in received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The body of the answer it got.
    pub answer: String,
}

impl Request {
    /// The first header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`null` if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A parameter of a form-encoded body (the AWS query protocol: STS,
    /// Redshift), e.g. `Action`.
    pub fn form(&self, name: &str) -> Option<String> {
        String::from_utf8_lossy(&self.body).split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// The access key id that signed the request (SigV4's
    /// `Authorization: AWS4-HMAC-SHA256 Credential=<id>/...`), if signed.
    pub fn signing_key_id(&self) -> Option<String> {
        let auth = self.header("authorization")?;
        let credential = auth.split("Credential=").nth(1)?;
        credential.split('/').next().map(str::to_string)
    }
}

/// Decode `%XX` and `+` as a form does.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Read one request from `stream`: its head, then a `Content-Length` body.
/// `None` if the peer closed before sending one.
pub fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(pos) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..header_end]).to_string();
    let mut lines = head.lines();
    let mut start = lines.next().unwrap_or_default().split(' ');
    let (method, path) = (start.next().unwrap_or_default().to_string(), start.next().unwrap_or_default().to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    let length: usize =
        headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    while data.len() < header_end + length {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Ok(Some(Request { method, path, headers, body: data[header_end..].to_vec(), answer: String::new() }))
}

/// An answer: status line text (`200 OK`), content type, body.
pub struct Response {
    /// e.g. `200 OK`.
    pub status: String,
    /// The Content-Type.
    pub content_type: String,
    /// The body.
    pub body: String,
}

impl Response {
    /// `200 OK` with a JSON body of `content_type`.
    pub fn json(content_type: &str, body: serde_json::Value) -> Response {
        Response { status: "200 OK".into(), content_type: content_type.into(), body: body.to_string() }
    }

    fn write_to(&self, stream: &mut TcpStream) -> std::io::Result<()> {
        let head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(self.body.as_bytes())
    }
}

/// An HTTP server on 127.0.0.1 that records every request and answers each
/// with what its handler says, one request per connection.
#[derive(Debug, Clone)]
pub struct StandIn {
    /// The port on 127.0.0.1.
    pub port: u16,
    /// Every request received, in order.
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl StandIn {
    /// Serve `answer` in a thread of its own.
    pub fn start(answer: impl Fn(&Request) -> Response + Send + 'static) -> StandIn {
        Self::serve(move |mut stream, log| {
            let Some(mut request) = read_request(&mut stream)? else { return Ok(()) };
            let response = answer(&request);
            request.answer = response.body.clone();
            log.lock().unwrap().push(request);
            response.write_to(&mut stream)
        })
    }

    /// A recording proxy in front of `target_port` on 127.0.0.1 (moto):
    /// each request is recorded and passed on, and the answer passed back.
    pub fn proxy(target_port: u16) -> StandIn {
        Self::serve(move |mut stream, log| {
            let Some(mut request) = read_request(&mut stream)? else { return Ok(()) };
            let mut upstream = TcpStream::connect(("127.0.0.1", target_port))?;
            let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
            for (k, v) in request.headers.iter().filter(|(k, _)| k != "connection") {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("connection: close\r\n\r\n");
            upstream.write_all(head.as_bytes())?;
            upstream.write_all(&request.body)?;
            let mut answer = Vec::new();
            upstream.read_to_end(&mut answer)?;
            let body = answer.windows(4).position(|w| w == b"\r\n\r\n").map_or(&answer[..0], |end| &answer[end + 4..]);
            request.answer = String::from_utf8_lossy(body).into_owned();
            log.lock().unwrap().push(request);
            stream.write_all(&answer)
        })
    }

    fn serve(handle: impl Fn(TcpStream, &Mutex<Vec<Request>>) -> std::io::Result<()> + Send + 'static) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = handle(stream, &log);
            }
        });
        StandIn { port, requests }
    }

    /// The stand-in's endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests received so far, each recorded once answered.
    pub fn received(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The query-protocol requests received so far with `Action` `action`.
    pub fn actions(&self, action: &str) -> Vec<Request> {
        self.received().into_iter().filter(|r| r.form("Action").as_deref() == Some(action)).collect()
    }
}
