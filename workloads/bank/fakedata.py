"""Deterministic French banking data: IBANs with valid keys, common names, log-normal amounts.

Everything comes from one `random.Random(seed)`, so a seed gives the same data on every run.
"""

from __future__ import annotations

import random
import uuid
from decimal import Decimal

PRENOMS = (
    "Jean",
    "Marie",
    "Pierre",
    "Nathalie",
    "Michel",
    "Isabelle",
    "Philippe",
    "Sylvie",
    "Alain",
    "Catherine",
    "Nicolas",
    "Sophie",
    "Christophe",
    "Valérie",
    "Patrick",
    "Sandrine",
    "Julien",
    "Céline",
    "Thomas",
    "Camille",
    "Louis",
    "Emma",
    "Lucas",
    "Léa",
    "Hugo",
    "Manon",
    "Gabriel",
    "Chloé",
    "Arthur",
    "Inès",
    "Jules",
    "Louise",
    "Antoine",
    "Claire",
    "François",
    "Anne",
    "Olivier",
    "Martine",
    "Éric",
    "Aurélie",
)
NOMS = (
    "Martin",
    "Bernard",
    "Thomas",
    "Petit",
    "Robert",
    "Richard",
    "Durand",
    "Dubois",
    "Moreau",
    "Laurent",
    "Simon",
    "Michel",
    "Lefebvre",
    "Leroy",
    "Roux",
    "David",
    "Bertrand",
    "Morel",
    "Fournier",
    "Girard",
    "Bonnet",
    "Dupont",
    "Lambert",
    "Fontaine",
    "Rousseau",
    "Vincent",
    "Muller",
    "Lefèvre",
    "Faure",
    "André",
    "Mercier",
    "Blanc",
    "Guérin",
    "Boyer",
    "Garnier",
    "Chevalier",
    "François",
    "Legrand",
    "Gauthier",
    "Garcia",
)
# a few real French bank codes (code banque): BNP, Société Générale, Crédit Agricole, LCL, La Banque Postale
BANK_CODES = ("30004", "30003", "11006", "30002", "20041", "10278", "17515", "30066")
TYPES_COMPTE = ("COURANT", "COURANT", "COURANT", "EPARGNE", "JOINT")
CANAUX = ("GUICHET", "VIREMENT", "CHEQUE", "CARTE", "CARTE", "CARTE")
MOTIFS_VIREMENT = ("Loyer", "Remboursement", "Cadeau", "Facture", "Épargne", "Participation", "Salaire")
CENT = Decimal("0.01")


def rib_key(bank: str, branch: str, account: str) -> str:
    """Clé RIB: 97 - (89*bank + 15*branch + 3*account) mod 97, for an all-digit account number."""
    return f"{97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97:02d}"


def _iban_digits(s: str) -> int:
    return int("".join(str(int(c, 36)) for c in s))


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616: 98 - (BBAN + country + "00" as digits, letters A=10..Z=35) mod 97."""
    return f"{98 - _iban_digits(bban + country + '00') % 97:02d}"


def iban_is_valid(iban: str) -> bool:
    s = iban.replace(" ", "").upper()
    if len(s) < 15 or not s[:2].isalpha() or not s[2:4].isdigit() or not s.isalnum():
        return False
    return _iban_digits(s[4:] + s[:4]) % 97 == 1


def montant_lognormal(rng: random.Random, median: float, sigma: float, lo: float, hi: float) -> Decimal:
    """A log-normal amount (most small, a long tail of large ones), clamped and rounded to cents."""
    import math

    x = rng.lognormvariate(math.log(median), sigma)
    return Decimal(f"{min(hi, max(lo, x)):.2f}")


class FakeData:
    def __init__(self, seed: int | str) -> None:
        self.rng = random.Random(seed)

    def prenom(self) -> str:
        return self.rng.choice(PRENOMS)

    def nom(self) -> str:
        return self.rng.choice(NOMS)

    def titulaire(self) -> str:
        return f"{self.prenom()} {self.nom()}"

    def iban(self) -> str:
        """A French IBAN: FRkk + bank(5) + branch(5) + account(11) + RIB key(2), both keys valid."""
        r = self.rng
        bank = r.choice(BANK_CODES)
        branch = f"{r.randrange(100000):05d}"
        account = f"{r.randrange(10**11):011d}"
        bban = bank + branch + account + rib_key(bank, branch, account)
        return "FR" + iban_check_digits("FR", bban) + bban

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def reference(self, prefix: str = "REF") -> str:
        """E.g. "DEP-4F09A2C7B1": one random draw (this sits on the load generator's hot path)."""
        return f"{prefix}-{self.rng.getrandbits(40):010X}"

    def montant(self, median: float = 60.0, sigma: float = 1.0, lo: float = 1.0, hi: float = 20000.0) -> Decimal:
        return montant_lognormal(self.rng, median, sigma, lo, hi)

    def type_compte(self) -> str:
        return self.rng.choice(TYPES_COMPTE)

    def canal(self) -> str:
        return self.rng.choice(CANAUX)

    def motif(self) -> str:
        return self.rng.choice(MOTIFS_VIREMENT)
