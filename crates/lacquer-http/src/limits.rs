//! Varnish's size limits on a head, with Varnish's names and defaults.

/// The limits one head is parsed under.
///
/// The fields are Varnish's parameters: for a client request
/// `http_req_hdr_len`, `http_req_size` and `http_max_hdr`; for a backend
/// response `http_resp_hdr_len`, `http_resp_size` and `http_max_hdr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest header line, in bytes, not counting its line ending but
    /// counting its continuation lines (`http_req_hdr_len`, `http_resp_hdr_len`;
    /// default 8k). A line of exactly this length is accepted.
    pub hdr_len: usize,
    /// The most bytes the whole head may take, from the first byte received
    /// to the end of the blank line that ends it (`http_req_size`,
    /// `http_resp_size`; default 32k). A head of exactly this size is accepted.
    pub size: usize,
    /// Varnish's `http_max_hdr` (default 64). As in Varnish, the first line
    /// takes five of these slots, so at most `max_hdr - 5` header lines fit.
    pub max_hdr: usize,
}

impl Limits {
    /// Varnish 7.1's defaults for a client request.
    pub const REQUEST: Limits = Limits { hdr_len: 8 * 1024, size: 32 * 1024, max_hdr: 64 };
    /// Varnish 7.1's defaults for a backend response.
    pub const RESPONSE: Limits = Limits { hdr_len: 8 * 1024, size: 32 * 1024, max_hdr: 64 };

    /// The number of header lines (after the first line) a head may have.
    pub fn max_fields(&self) -> usize {
        self.max_hdr.saturating_sub(5)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::REQUEST
    }
}
