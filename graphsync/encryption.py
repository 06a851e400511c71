"""Symmetric encryption for secrets stored in the database (client secrets)."""
import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _fernet() -> Fernet:
    if settings.FIELD_ENCRYPTION_KEY:
        try:
            return Fernet(settings.FIELD_ENCRYPTION_KEY)
        except ValueError as exc:
            raise ImproperlyConfigured(
                "FIELD_ENCRYPTION_KEY is not a valid Fernet key: generate one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
            ) from exc
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"licensepools-field-encryption").derive(
        settings.SECRET_KEY.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored client secret cannot be decrypted: FIELD_ENCRYPTION_KEY or DJANGO_SECRET_KEY changed "
            "since it was saved. Restore the old key or enter the client secret again."
        ) from exc
