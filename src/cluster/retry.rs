//! The one retry policy: answers the server asks us to repeat (429 from API Priority and Fairness
//! or max-inflight throttling, 503, 504, any 5xx carrying Retry-After as in client-go), any 5xx for
//! a read, and requests that failed without an answer where repeating them is safe.
//!
//! kube's own policy allows 15 retries and honours any Retry-After, which under sustained
//! throttling adds up to minutes of silence; a command line tool needs a bound. This one waits the
//! longer of its jittered exponential backoff and the server's Retry-After, and gives up after
//! `MAX_RETRIES` retries or once the waits of one request would pass `BUDGET`, returning the last
//! answer so the user reads the server's own message.

use std::io;
use std::time::{Duration, SystemTime};

use http::header::RETRY_AFTER;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use kube::client::Body;
use tokio::time::{Instant, Sleep};
use tower::BoxError;
use tower::retry::Policy;
use tower::retry::backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::util::rng::HasherRng;

/// client-go's limit on retries of one request.
pub const MAX_RETRIES: u32 = 10;
/// The most one request waits between its attempts, all retries together.
pub const BUDGET: Duration = Duration::from_secs(30);
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether an answer asks for another try: throttling and unavailability for any request, any 5xx
/// with Retry-After (client-go's rule), and any 5xx for a read, which is safe to repeat.
pub fn retryable(method: &Method, status: StatusCode, retry_after: Option<Duration>) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    ) || (status.is_server_error() && (retry_after.is_some() || method == Method::GET))
}

/// The wait before retry number `attempt` (from 1) after `waited` so far, or None to give up.
pub fn next_wait(
    attempt: u32,
    waited: Duration,
    backoff: Duration,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    if attempt > MAX_RETRIES {
        return None;
    }
    let wait = retry_after.map_or(backoff, |ra| ra.max(backoff));
    (waited + wait <= BUDGET).then_some(wait)
}

/// Retry-After in either of its forms: seconds, or an HTTP date (read against `now`).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    match value.parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => httpdate::parse_http_date(value)
            .ok()
            .map(|at| at.duration_since(now).unwrap_or_default()),
    }
}

/// Whether a request that failed without an answer may be sent again: a refused connection never
/// reached the server, so any request may; a connection lost mid-way only a read.
pub fn retryable_failure(method: &Method, e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if let (io::ErrorKind::Other, Some(inner)) = (io.kind(), io.get_ref()) {
                cur = Some(inner);
                continue;
            }
            return match io.kind() {
                io::ErrorKind::ConnectionRefused => true,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof => method == Method::GET,
                _ => false,
            };
        }
        cur = err.source();
    }
    false
}

/// One per request (tower clones it for each call), so counts and waits are per request.
#[derive(Clone)]
pub struct RetryPolicy {
    backoff: ExponentialBackoff,
    attempts: u32,
    waited: Duration,
}

impl RetryPolicy {
    /// The next wait for a request that `why` (an answer or a failure) asks to repeat, or None
    /// once the bounds are reached; logged either way.
    fn schedule<B>(
        &mut self,
        req: &Request<B>,
        why: &dyn std::fmt::Display,
        retry_after: Option<Duration>,
    ) -> Option<Sleep> {
        self.attempts += 1;
        let backoff = self
            .backoff
            .next_backoff()
            .deadline()
            .saturating_duration_since(Instant::now());
        let (method, path) = (req.method(), req.uri().path());
        let Some(wait) = next_wait(self.attempts, self.waited, backoff, retry_after) else {
            let retries = self.attempts - 1;
            tracing::info!("{method} {path} {why}; giving up after {retries} retries");
            return None;
        };
        self.waited += wait;
        let after = humantime::format_duration(Duration::from_millis(wait.as_millis() as u64));
        tracing::info!(
            "{method} {path} {why}; retry {}/{MAX_RETRIES} in {after}",
            self.attempts
        );
        Some(tokio::time::sleep(wait))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let backoff = ExponentialBackoffMaker::new(MIN_BACKOFF, MAX_BACKOFF, 0.5, HasherRng::new())
            .expect("constant backoff bounds are valid")
            .make_backoff();
        RetryPolicy {
            backoff,
            attempts: 0,
            waited: Duration::ZERO,
        }
    }
}

impl<B> Policy<Request<Body>, Response<B>, BoxError> for RetryPolicy {
    type Future = Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<B>, BoxError>,
    ) -> Option<Sleep> {
        match result {
            Ok(res) => {
                let retry_after = retry_after(res.headers(), SystemTime::now());
                if !retryable(req.method(), res.status(), retry_after) {
                    return None;
                }
                self.schedule(req, &format_args!("answered {}", res.status()), retry_after)
            }
            // The backoff alone paces failures without an answer (an apiserver restarting).
            Err(e) => {
                if !retryable_failure(req.method(), e.as_ref()) {
                    return None;
                }
                self.schedule(req, &format_args!("failed ({e})"), None)
            }
        }
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        // Streaming bodies cannot be replayed; those requests are simply not retried.
        let mut clone = Request::new(req.body().try_clone()?);
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.version_mut() = req.version();
        *clone.headers_mut() = req.headers().clone();
        *clone.extensions_mut() = req.extensions().clone();
        Some(clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn throttling_and_unavailability_are_retried_other_failures_are_not() {
        let ra = Some(Duration::from_secs(1));
        let (get, patch) = (&Method::GET, &Method::PATCH);
        for code in [429, 503, 504] {
            assert!(
                retryable(patch, StatusCode::from_u16(code).unwrap(), None),
                "{code}"
            );
        }
        assert!(retryable(patch, StatusCode::INTERNAL_SERVER_ERROR, ra));
        assert!(!retryable(patch, StatusCode::INTERNAL_SERVER_ERROR, None));
        assert!(retryable(get, StatusCode::INTERNAL_SERVER_ERROR, None));
        for code in [200, 400, 401, 403, 404, 409, 422] {
            assert!(
                !retryable(get, StatusCode::from_u16(code).unwrap(), ra),
                "{code}"
            );
        }
    }

    #[test]
    fn a_refused_connection_is_retried_a_lost_one_only_for_reads() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let wrapped = io::Error::other(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(retryable_failure(&Method::PATCH, &refused));
        assert!(retryable_failure(&Method::GET, &wrapped));
        assert!(retryable_failure(&Method::GET, &reset));
        assert!(!retryable_failure(&Method::DELETE, &reset));
        assert!(!retryable_failure(
            &Method::GET,
            &io::Error::from(io::ErrorKind::TimedOut)
        ));
    }

    #[test]
    fn the_wait_honours_retry_after_and_stops_at_the_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(next_wait(1, ms(0), ms(200), None), Some(ms(200)));
        assert_eq!(next_wait(1, ms(0), ms(200), Some(ms(3000))), Some(ms(3000)));
        assert_eq!(next_wait(2, ms(0), ms(800), Some(ms(0))), Some(ms(800)));
        assert_eq!(next_wait(MAX_RETRIES, ms(0), ms(1), None), Some(ms(1)));
        assert_eq!(next_wait(MAX_RETRIES + 1, ms(0), ms(1), None), None);
        assert_eq!(next_wait(3, BUDGET - ms(1), ms(1), None), Some(ms(1)));
        assert_eq!(next_wait(3, BUDGET - ms(1), ms(2), None), None);
        assert_eq!(next_wait(1, ms(0), ms(1), Some(BUDGET + ms(1))), None);
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(
            retry_after(&headers("7"), now),
            Some(Duration::from_secs(7))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(5));
        assert_eq!(
            retry_after(&headers(&later), now),
            Some(Duration::from_secs(5))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(retry_after(&headers(&earlier), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
