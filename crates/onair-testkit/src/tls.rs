//! Certificates for the RTMPS tests: a test CA and server certificates made
//! in the test (rcgen), good and bad, written as PEM files nginx can load.
//!
//! Why made per run: no certificate or key is committed, none expires in the
//! repository, and the "expired" one is expired by construction. The server
//! side is nginx's `stream` module in front of nginx-rtmp
//! ([`crate::NginxOptions::tls`]), so the TLS peer is a real one (OpenSSL).

use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The names every good certificate is for: the loopback by name and by address.
pub const GOOD_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// The names of [`TestPki::all`]'s certificates, in its order (as the fields are named).
pub const CERT_NAMES: [&str; 4] = ["good", "self_signed", "wrong_name", "expired"];

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate chain (leaf only: the CA is what clients trust).
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// A test CA and the server certificates the RTMPS tests use. The files
/// live in a temp dir deleted on drop.
#[derive(Debug)]
pub struct TestPki {
    dir: tempfile::TempDir,
    /// Signed by the test CA, valid for [`GOOD_NAMES`].
    pub good: CertFiles,
    /// Self-signed (not by any trusted CA), valid for [`GOOD_NAMES`].
    pub self_signed: CertFiles,
    /// Signed by the test CA, but for `wrong.example` only.
    pub wrong_name: CertFiles,
    /// Signed by the test CA, valid for [`GOOD_NAMES`], expired in 2021.
    pub expired: CertFiles,
}

fn err(e: rcgen::Error) -> io::Error {
    io::Error::other(format!("rcgen: {e}"))
}

fn leaf(names: &[&str]) -> io::Result<CertificateParams> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(names).map_err(err)?;
    p.distinguished_name
        .push(DnType::CommonName, "onair test server");
    Ok(p)
}

impl TestPki {
    /// Makes the CA and the four server certificates.
    pub fn new() -> io::Result<TestPki> {
        let dir = tempfile::Builder::new().prefix("onair-pki-").tempdir()?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "onair test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().map_err(err)?;
        let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem())?;
        let issuer = Issuer::new(ca, ca_key);

        let write = |name: &str, cert: String, key: &KeyPair| -> io::Result<CertFiles> {
            let files = CertFiles {
                cert: dir.path().join(format!("{name}.crt")),
                key: dir.path().join(format!("{name}.key")),
            };
            std::fs::write(&files.cert, cert)?;
            std::fs::write(&files.key, key.serialize_pem())?;
            Ok(files)
        };
        let signed = |name: &str, params: CertificateParams| -> io::Result<CertFiles> {
            let key = KeyPair::generate().map_err(err)?;
            let cert = params.signed_by(&key, &issuer).map_err(err)?;
            write(name, cert.pem(), &key)
        };
        let good = signed("good", leaf(&GOOD_NAMES)?)?;
        let wrong_name = signed("wrong-name", leaf(&["wrong.example"])?)?;
        let mut old = leaf(&GOOD_NAMES)?;
        old.not_before = date_time_ymd(2020, 1, 1);
        old.not_after = date_time_ymd(2021, 1, 1);
        let expired = signed("expired", old)?;
        let self_key = KeyPair::generate().map_err(err)?;
        let self_cert = leaf(&GOOD_NAMES)?.self_signed(&self_key).map_err(err)?;
        let self_signed = write("self-signed", self_cert.pem(), &self_key)?;
        Ok(TestPki {
            dir,
            good,
            self_signed,
            wrong_name,
            expired,
        })
    }

    /// Every server certificate, in [`CERT_NAMES`] order: one TLS front each
    /// ([`crate::NginxOptions::tls`]).
    pub fn all(&self) -> Vec<CertFiles> {
        vec![
            self.good.clone(),
            self.self_signed.clone(),
            self.wrong_name.clone(),
            self.expired.clone(),
        ]
    }

    /// The test CA's certificate (PEM): what `--ca-file` is given.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_file() {
        let pki = TestPki::new().expect("pki");
        for f in [&pki.good, &pki.self_signed, &pki.wrong_name, &pki.expired] {
            let cert = std::fs::read_to_string(&f.cert).expect("cert");
            assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
            let key = std::fs::read_to_string(&f.key).expect("key");
            assert!(key.contains("PRIVATE KEY"), "{key}");
        }
        assert!(std::fs::read_to_string(pki.ca_file())
            .expect("ca")
            .starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
