//! NTLM over HTTP, as IIS speaks it for Windows Integrated Authentication (MS-NTHT): the
//! client sends a NEGOTIATE message in `Authorization: NTLM <base64>` (or `Negotiate`), the
//! server answers 401 with a CHALLENGE in `WWW-Authenticate` on the same connection, and the
//! client repeats the request with the AUTHENTICATE message. The messages themselves come
//! from Devolutions' `sspi` (NTLMv2 with a message integrity code); this module only carries
//! them: [`Initiator`] for the ADCS client, [`Acceptor`] for the certsrv emulator.

use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, DataRepresentation, Ntlm,
    SecurityBuffer, SecurityStatus, ServerRequestFlags, Sspi as _, SspiImpl as _, Username,
    UsernameParts,
};

/// An NTLM header's scheme: IIS offers both; `Negotiate` carries the NTLM messages as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `NTLM`.
    Ntlm,
    /// `Negotiate` (SPNEGO; a bare NTLM message is accepted in it).
    Negotiate,
}

impl Scheme {
    /// As the header writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ntlm => "NTLM",
            Self::Negotiate => "Negotiate",
        }
    }

    /// The scheme and token of an `Authorization` or `WWW-Authenticate` value, when it is one
    /// of ours (`NTLM <base64>`, `Negotiate <base64>`); the token is empty for a bare offer.
    pub fn parse(value: &str) -> Option<(Self, Vec<u8>)> {
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        let scheme = if scheme.eq_ignore_ascii_case("NTLM") {
            Self::Ntlm
        } else if scheme.eq_ignore_ascii_case("Negotiate") {
            Self::Negotiate
        } else {
            return None;
        };
        let token = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .ok()?;
        Some((scheme, token))
    }

    /// The header value carrying `token`.
    pub fn header(self, token: &[u8]) -> String {
        format!(
            "{} {}",
            self.as_str(),
            base64::engine::general_purpose::STANDARD.encode(token)
        )
    }
}

/// Why a conversation stopped.
#[derive(Debug, thiserror::Error)]
pub enum NtlmError {
    /// The account name is not `DOMAIN\user`, `user@domain` or `user`.
    #[error("the user name is not DOMAIN\\user, user@domain or user: {0}")]
    Username(String),
    /// The other side sent something that is not the next NTLM message, or it did not verify.
    #[error("NTLM: {0}")]
    Protocol(String),
}

impl From<sspi::Error> for NtlmError {
    fn from(error: sspi::Error) -> Self {
        // The description never holds the password: sspi reports kinds and states.
        Self::Protocol(format!("{:?}: {}", error.error_type, error.description))
    }
}

/// The account NTLM logs in as.
pub fn identity(username: &str, password: &SecretString) -> Result<AuthIdentity, NtlmError> {
    Ok(AuthIdentity {
        username: Username::parse(username.trim())
            .map_err(|e| NtlmError::Username(e.to_string()))?,
        password: password.expose_secret().to_owned().into(),
    })
}

/// The client's side of one conversation.
#[derive(Debug)]
pub struct Initiator {
    ntlm: Ntlm,
    credentials: Option<sspi::AuthIdentityBuffers>,
}

impl Initiator {
    /// Starts a conversation as `identity`; returns it and the NEGOTIATE message. Over TLS,
    /// `channel_binding` ([`tls_server_end_point`]) ties the login to that TLS connection, as
    /// IIS's Extended Protection for Authentication requires.
    pub fn start(
        identity: &AuthIdentity,
        channel_binding: Option<&[u8]>,
    ) -> Result<(Self, Vec<u8>), NtlmError> {
        let mut ntlm = Ntlm::new();
        if let Some(binding) = channel_binding {
            ntlm.set_channel_bindings(binding);
        }
        let credentials = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(identity)
            .execute(&mut ntlm)?
            .credentials_handle;
        let mut initiator = Self { ntlm, credentials };
        let negotiate = initiator.step(None)?;
        Ok((initiator, negotiate))
    }

    /// The AUTHENTICATE message answering the server's CHALLENGE.
    pub fn authenticate(mut self, challenge: &[u8]) -> Result<Vec<u8>, NtlmError> {
        self.step(Some(challenge))
    }

    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, NtlmError> {
        let mut input = vec![SecurityBuffer::new(
            input.unwrap_or_default().to_vec(),
            BufferType::Token,
        )];
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut builder = self
            .ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut self.credentials)
            .with_context_requirements(ClientRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_output(&mut output);
        if !input[0].buffer.is_empty() {
            builder = builder.with_input(&mut input);
        }
        let status = self
            .ntlm
            .initialize_security_context_impl(&mut builder)?
            .resolve_to_result()?
            .status;
        if matches!(
            status,
            SecurityStatus::CompleteAndContinue | SecurityStatus::CompleteNeeded
        ) {
            self.ntlm.complete_auth_token(&mut output)?;
        }
        Ok(std::mem::take(&mut output[0].buffer))
    }
}

/// The server's side of one conversation, for the one account it accepts.
#[derive(Debug)]
pub struct Acceptor {
    ntlm: Ntlm,
    credentials: Option<sspi::AuthIdentityBuffers>,
    expected: Username,
    /// Whether the AUTHENTICATE must carry this connection's channel binding.
    binding_required: bool,
}

/// What the server makes of a message.
#[derive(Debug)]
pub enum Accepted {
    /// A NEGOTIATE: send this CHALLENGE, and keep the acceptor for the connection.
    Challenge(Box<Acceptor>, Vec<u8>),
    /// An AUTHENTICATE that verified, from the expected account.
    LoggedIn,
}

impl Acceptor {
    /// A server accepting only `identity`.
    pub fn new(identity: &AuthIdentity) -> Result<Self, NtlmError> {
        let mut ntlm = Ntlm::new();
        let credentials = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Inbound)
            .with_auth_data(identity)
            .execute(&mut ntlm)?
            .credentials_handle;
        Ok(Self {
            ntlm,
            credentials,
            expected: identity.username.clone(),
            binding_required: false,
        })
    }

    /// Checks the client's channel binding against `binding`, this TLS connection's; with
    /// `required`, a client that sends none is refused too (Extended Protection "Required";
    /// otherwise "Accept").
    pub fn with_channel_binding(mut self, binding: &[u8], required: bool) -> Self {
        self.ntlm.set_channel_bindings(binding);
        self.binding_required = required;
        self
    }

    /// Takes the client's next message: a NEGOTIATE (on a new acceptor) or the AUTHENTICATE
    /// (on the one that sent the challenge). An AUTHENTICATE must carry a message integrity
    /// code: `sspi`'s server checks the password only through it, so one without would
    /// prove nothing (NTLMv1 and clients that send none, such as curl, are refused).
    pub fn accept(mut self, message: &[u8]) -> Result<Accepted, NtlmError> {
        if message.get(8) == Some(&3) && !carries_mic(message) {
            return Err(NtlmError::Protocol(
                "an AUTHENTICATE message without a message integrity code".to_owned(),
            ));
        }
        if message.get(8) == Some(&3)
            && self.binding_required
            && av_pair_at(message, AV_CHANNEL_BINDINGS)
                .is_none_or(|at| message[at..at + 16].iter().all(|b| *b == 0))
        {
            return Err(NtlmError::Protocol(
                "an AUTHENTICATE message without the connection's channel binding".to_owned(),
            ));
        }
        let mut input = vec![SecurityBuffer::new(message.to_vec(), BufferType::Token)];
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let builder = self
            .ntlm
            .accept_security_context()
            .with_credentials_handle(&mut self.credentials)
            .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
            .with_target_data_representation(DataRepresentation::Native)
            .with_input(&mut input)
            .with_output(&mut output);
        let status = self
            .ntlm
            .accept_security_context_impl(builder)?
            .resolve_to_result()
            .map_err(|e| NtlmError::Protocol(e.to_string()))?
            .status;
        match status {
            SecurityStatus::ContinueNeeded => {
                let challenge = std::mem::take(&mut output[0].buffer);
                Ok(Accepted::Challenge(Box::new(self), challenge))
            }
            SecurityStatus::CompleteNeeded | SecurityStatus::CompleteAndContinue => {
                // Verifies the response and its integrity code against the password.
                self.ntlm.complete_auth_token(&mut output)?;
                self.logged_in()
            }
            SecurityStatus::Ok => self.logged_in(),
            other => Err(NtlmError::Protocol(format!("unexpected state {other:?}"))),
        }
    }

    /// The password verified; the account must be the expected one too (NTLM itself takes
    /// whatever name the client sends).
    fn logged_in(mut self) -> Result<Accepted, NtlmError> {
        let wire = self.ntlm.query_context_names()?.username;
        if account(&wire) == account(&self.expected) {
            Ok(Accepted::LoggedIn)
        } else {
            Err(NtlmError::Protocol("not the expected account".to_owned()))
        }
    }
}

/// `MsvAvFlags`, whose bit 0x2 says a MIC is carried (MS-NLMP 2.2.2.1).
const AV_FLAGS: usize = 6;
/// `MsvAvChannelBindings`: the MD5 of the client's channel bindings (16 bytes).
const AV_CHANNEL_BINDINGS: usize = 10;

/// Whether an AUTHENTICATE message says it carries a MIC: its NTLMv2 response's attribute
/// list has `MsvAvFlags` with bit 0x2 (MS-NLMP 2.2.2.1, 2.2.2.7).
fn carries_mic(message: &[u8]) -> bool {
    av_pair_at(message, AV_FLAGS).is_some_and(|at| message[at] & 0x02 != 0)
}

/// Where in an AUTHENTICATE message the value of attribute `wanted` of its NTLMv2 response
/// starts (the value is whole: 4 bytes for the flags, 16 for the channel bindings).
fn av_pair_at(message: &[u8], wanted: usize) -> Option<usize> {
    let u16_at = |at: usize| {
        message
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let length = u16_at(20)?;
    let offset = message
        .get(24..28)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)?;
    let end = offset.checked_add(length)?.min(message.len());
    // NTProofStr (16), then the blob: type, reserved and timestamp fields (28) and the pairs.
    let mut at = offset.checked_add(16 + 28)?;
    let whole = if wanted == AV_FLAGS { 4 } else { 16 };
    while at + 4 <= end {
        let (id, len) = (u16_at(at)?, u16_at(at + 2)?);
        let value = at + 4;
        if id == 0 || value + len > end {
            return None;
        }
        if id == wanted && len == whole {
            return Some(value);
        }
        at = value + len;
    }
    None
}

/// The `tls-server-end-point` channel binding of a TLS server certificate (RFC 5929 4.1):
/// its hash under the hash of its signature algorithm, SHA-256 for MD5 and SHA-1.
pub fn tls_server_end_point(certificate_der: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    let algorithm = x509_parser::parse_x509_certificate(certificate_der)
        .map(|(_, c)| c.signature_algorithm.algorithm.to_id_string())
        .unwrap_or_default();
    let hash = match algorithm.as_str() {
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => {
            sha2::Sha384::digest(certificate_der).to_vec()
        }
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => {
            sha2::Sha512::digest(certificate_der).to_vec()
        }
        _ => sha2::Sha256::digest(certificate_der).to_vec(),
    };
    [b"tls-server-end-point:".as_slice(), &hash].concat()
}

/// An account as Windows compares it: `domain\user` or `user@suffix`, case-insensitively.
fn account(username: &Username) -> String {
    match username.parts() {
        UsernameParts::UserPrincipalName(upn) => upn.upn().to_lowercase(),
        UsernameParts::DownLevelLogonName(name) => format!(
            "{}\\{}",
            name.netbios_domain().unwrap_or_default(),
            name.account_name()
        )
        .to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(client: &str, password: &str) -> Result<Accepted, NtlmError> {
        let server = Acceptor::new(&identity("EXAMPLE\\enroll", &"s3cret".to_owned().into())?)?;
        let (initiator, negotiate) =
            Initiator::start(&identity(client, &password.to_owned().into())?, None)?;
        let Accepted::Challenge(server, challenge) = server.accept(&negotiate)? else {
            panic!("a challenge first");
        };
        server.accept(&initiator.authenticate(&challenge)?)
    }

    #[test]
    fn the_right_account_logs_in_and_a_wrong_password_or_account_does_not() {
        assert!(matches!(
            conversation("EXAMPLE\\enroll", "s3cret"),
            Ok(Accepted::LoggedIn)
        ));
        assert!(matches!(
            conversation("example\\ENROLL", "s3cret"),
            Ok(Accepted::LoggedIn)
        ));
        assert!(conversation("EXAMPLE\\enroll", "wrong").is_err());
        assert!(conversation("EXAMPLE\\someone", "s3cret").is_err());
        assert!(conversation("OTHER\\enroll", "s3cret").is_err());
    }

    #[test]
    fn an_authenticate_message_without_its_integrity_code_is_refused_even_with_the_password() {
        let account = identity("EXAMPLE\\enroll", &"s3cret".to_owned().into()).expect("id");
        let server = Acceptor::new(&account).expect("acceptor");
        let (initiator, negotiate) = Initiator::start(&account, None).expect("negotiate");
        let Ok(Accepted::Challenge(server, challenge)) = server.accept(&negotiate) else {
            panic!("a challenge first");
        };
        let mut authenticate = initiator.authenticate(&challenge).expect("authenticate");
        let at = av_pair_at(&authenticate, AV_FLAGS).expect("sspi's client sends MsvAvFlags");
        assert!(carries_mic(&authenticate));
        authenticate[at] &= !0x02;
        assert!(server.accept(&authenticate).is_err());
        assert!(!carries_mic(b"NTLMSSP\0\x03\0\0\0short"));
    }

    /// A login with `client`'s channel binding to a server checking `server`'s.
    fn bound(client: Option<&[u8]>, server: &[u8], required: bool) -> Result<Accepted, NtlmError> {
        let account = identity("EXAMPLE\\enroll", &"s3cret".to_owned().into())?;
        let acceptor = Acceptor::new(&account)?.with_channel_binding(server, required);
        let (initiator, negotiate) = Initiator::start(&account, client)?;
        let Accepted::Challenge(acceptor, challenge) = acceptor.accept(&negotiate)? else {
            panic!("a challenge first");
        };
        acceptor.accept(&initiator.authenticate(&challenge)?)
    }

    #[test]
    fn extended_protection_takes_the_connections_binding_and_refuses_another_or_none() {
        let ours = tls_server_end_point(b"not even a certificate");
        assert!(ours.starts_with(b"tls-server-end-point:"));
        assert_eq!(ours.len(), "tls-server-end-point:".len() + 32);
        let theirs = tls_server_end_point(b"a relay's certificate");
        assert!(matches!(
            bound(Some(&ours), &ours, true),
            Ok(Accepted::LoggedIn)
        ));
        assert!(
            bound(Some(&theirs), &ours, false).is_err(),
            "a relayed login"
        );
        assert!(bound(None, &ours, true).is_err(), "required");
        assert!(
            matches!(bound(None, &ours, false), Ok(Accepted::LoggedIn)),
            "accept"
        );
    }

    #[test]
    fn headers_carry_the_messages_in_either_scheme() {
        let header = Scheme::Negotiate.header(b"\x01\x02");
        assert_eq!(header, "Negotiate AQI=");
        assert_eq!(
            Scheme::parse(&header),
            Some((Scheme::Negotiate, vec![1, 2]))
        );
        assert_eq!(Scheme::parse("NTLM"), Some((Scheme::Ntlm, Vec::new())));
        assert_eq!(Scheme::parse("Basic realm=\"x\""), None);
        assert_eq!(Scheme::parse("NTLM !!!"), None);
    }
}
