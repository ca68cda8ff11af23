"""moto's server, with the parts of ACM's protocol that moto leaves out, as AWS documents them.

The integration tests run the real AWS SDK against this server (SES, S3, ACM, Route 53). moto
speaks ACM's JSON protocol but lacks three behaviours the service depends on; they are added
here, on moto's own certificate records, and nothing else is changed:

- RevokeCertificate (CertificateArn, RevocationReason) -> CertificateArn. ACM revokes only
  public certificates that were exported; the certificate's Status becomes REVOKED, and
  DescribeCertificate then states RevokedAt and RevocationReason.
- Managed renewal. ACM renews a public certificate under the same ARN by itself, 60 days
  before it expires: a new key and serial, the same names, a later NotAfter.
  RenewCertificate (CertificateArn) is the API that asks it to; the tests use it to make that
  renewal happen now (dated as if it happened 60 days before expiry).
- VALIDATION_TIMED_OUT. ACM gives up on a certificate whose DNS validation records never
  appear (after 72 hours). Names listed in MOTO_ACM_NEVER_VALIDATES (comma-separated) never
  validate: once moto's validation wait has passed they time out instead of being issued.

Run as moto_server: python3 moto_server.py -H 127.0.0.1 -p PORT
"""

import datetime
import json
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.acm import models, responses
from moto.acm.exceptions import AWSValidationException
from moto.server import main

_check = models.CertBundle.check
_describe = models.CertBundle.describe


def _never_validates(bundle):
    names = {n.strip() for n in os.environ.get("MOTO_ACM_NEVER_VALIDATES", "").split(",")}
    return bundle.common_name in names


def check(self):
    was_pending = self.status == "PENDING_VALIDATION"
    _check(self)
    if was_pending and self.status == "ISSUED" and _never_validates(self):
        self.status = "VALIDATION_TIMED_OUT"


def describe(self):
    result = _describe(self)
    detail = result["Certificate"]
    if getattr(self, "revoked_at", None) is not None:
        detail["RevokedAt"] = self.revoked_at.timestamp()
        detail["RevocationReason"] = self.revocation_reason
    if detail.get("Type") == "AMAZON_ISSUED":
        detail["RenewalEligibility"] = "ELIGIBLE" if self.status == "ISSUED" else "INELIGIBLE"
    return result


def revoke_certificate(self, arn, reason):
    bundle = self.get_certificate(arn)
    if bundle.type != "AMAZON_ISSUED" or bundle.cert_options.get("Export") != "ENABLED":
        raise AWSValidationException(
            f"Certificate ARN: {arn} was not exported; only exported public certificates "
            "can be revoked"
        )
    if bundle.status == "REVOKED":
        raise AWSValidationException(f"Certificate ARN: {arn} is already revoked")
    bundle.status = "REVOKED"
    bundle.revoked_at = datetime.datetime.now(datetime.timezone.utc)
    bundle.revocation_reason = reason
    return arn


def renew_certificate(self, arn):
    """Renews as ACM does, 60 days before expiry: a new key and serial, valid from then for as
    long as the certificate it replaces, for the same names."""
    bundle = self.get_certificate(arn)
    if bundle.type != "AMAZON_ISSUED" or bundle.status != "ISSUED":
        raise AWSValidationException(f"Certificate ARN: {arn} is not eligible for renewal")
    old = bundle._cert
    not_before = _not_valid_after(old) - datetime.timedelta(days=60)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + (_not_valid_after(old) - _not_valid_before(old)))
    )
    for extension in old.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    cert = builder.sign(key, hashes.SHA256())
    bundle.cert = cert.public_bytes(serialization.Encoding.PEM)
    bundle.key = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.TraditionalOpenSSL,
        encryption_algorithm=serialization.NoEncryption(),
    )
    bundle._cert = cert
    bundle._key = key


def _not_valid_after(cert):
    return getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(
        tzinfo=datetime.timezone.utc
    )


def _not_valid_before(cert):
    return getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before.replace(
        tzinfo=datetime.timezone.utc
    )


def revoke_certificate_action(self):
    arn = self.acm_backend.revoke_certificate(
        self._get_param("CertificateArn"), self._get_param("RevocationReason")
    )
    return json.dumps({"CertificateArn": arn})


def renew_certificate_action(self):
    self.acm_backend.renew_certificate(self._get_param("CertificateArn"))
    return ""


models.CertBundle.check = check
models.CertBundle.describe = describe
models.AWSCertificateManagerBackend.revoke_certificate = revoke_certificate
models.AWSCertificateManagerBackend.renew_certificate = renew_certificate
responses.AWSCertificateManagerResponse.revoke_certificate = revoke_certificate_action
responses.AWSCertificateManagerResponse.renew_certificate = renew_certificate_action

if __name__ == "__main__":
    main()
