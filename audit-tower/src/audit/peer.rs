//! Who is on the other end of the connection: the peer's address from the server's connect
//! info, and (feature `tonic-tls`) the subject of the client certificate a TLS handshake
//! verified.

use std::net::IpAddr;

use http::Request;

/// The peer's address: axum's `ConnectInfo`, tonic's `TcpConnectInfo` (feature `tonic`; also
/// inside `TlsConnectInfo` with `tonic-tls`), or a bare `SocketAddr` in the extensions.
pub(crate) fn ip<B>(req: &Request<B>) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        return Some(addr.ip());
    }
    #[cfg(feature = "tonic")]
    {
        use tonic::transport::server::TcpConnectInfo;
        if let Some(addr) = req
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
        {
            return Some(addr.ip());
        }
        #[cfg(feature = "tonic-tls")]
        if let Some(addr) = req
            .extensions()
            .get::<tonic::transport::server::TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|tls| tls.get_ref().remote_addr())
        {
            return Some(addr.ip());
        }
    }
    req.extensions()
        .get::<std::net::SocketAddr>()
        .map(std::net::SocketAddr::ip)
}

/// The subject of the client certificate tonic's TLS handshake verified (RFC 4514 form,
/// e.g. `CN=orders,O=acme`), when the connection has one.
#[cfg(feature = "tonic-tls")]
pub(crate) fn certificate_subject<B>(req: &Request<B>) -> Option<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let certs = req
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    let (_, cert) = X509Certificate::from_der(certs.first()?.as_ref()).ok()?;
    Some(cert.subject().to_string())
}

/// Without `tonic-tls` no certificate is read.
#[cfg(not(feature = "tonic-tls"))]
pub(crate) fn certificate_subject<B>(_: &Request<B>) -> Option<String> {
    None
}
