"""Usage locations: ISO 3166-1 alpha-2 codes, mapping a user's country to one, and filling it in through Graph.

Microsoft 365 assigns a license only to a user with a usage location. When a user lacks one, the portal
takes it from the user's ``country`` (a code or a country name it can map without doubt), else from the
pool's default usage location, sets it through Graph and records the change.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import Http404
from django.utils.translation import gettext as _

from graphsync.client import GraphClient
from graphsync.errors import GraphError
from graphsync.models import DirectoryUser
from rbac import scoping

from .audit import record_event
from .choices import AuditAction, Outcome
from .exceptions import AssignmentRejected, GraphRejected, PoolsError
from .graph_messages import describe_graph_error
from .models import Pool

logger = logging.getLogger(__name__)

# ISO 3166-1: alpha-2 code -> (alpha-3 code, short name, then common and official names where they differ).
# Copied from iso_3166-1.json of Debian's iso-codes package, version 4.15.0.
# NOTE: Microsoft 365 sells in most but not all of these countries; Graph rejects a usage location where
# Microsoft 365 is not offered, and this table does not know which those are.
ISO_3166_COUNTRIES: dict[str, tuple[str, ...]] = {
    "AD": ("AND", "Andorra", "Principality of Andorra"),
    "AE": ("ARE", "United Arab Emirates"),
    "AF": ("AFG", "Afghanistan", "Islamic Republic of Afghanistan"),
    "AG": ("ATG", "Antigua and Barbuda"),
    "AI": ("AIA", "Anguilla"),
    "AL": ("ALB", "Albania", "Republic of Albania"),
    "AM": ("ARM", "Armenia", "Republic of Armenia"),
    "AO": ("AGO", "Angola", "Republic of Angola"),
    "AQ": ("ATA", "Antarctica"),
    "AR": ("ARG", "Argentina", "Argentine Republic"),
    "AS": ("ASM", "American Samoa"),
    "AT": ("AUT", "Austria", "Republic of Austria"),
    "AU": ("AUS", "Australia"),
    "AW": ("ABW", "Aruba"),
    "AX": ("ALA", "Åland Islands"),
    "AZ": ("AZE", "Azerbaijan", "Republic of Azerbaijan"),
    "BA": ("BIH", "Bosnia and Herzegovina", "Republic of Bosnia and Herzegovina"),
    "BB": ("BRB", "Barbados"),
    "BD": ("BGD", "Bangladesh", "People's Republic of Bangladesh"),
    "BE": ("BEL", "Belgium", "Kingdom of Belgium"),
    "BF": ("BFA", "Burkina Faso"),
    "BG": ("BGR", "Bulgaria", "Republic of Bulgaria"),
    "BH": ("BHR", "Bahrain", "Kingdom of Bahrain"),
    "BI": ("BDI", "Burundi", "Republic of Burundi"),
    "BJ": ("BEN", "Benin", "Republic of Benin"),
    "BL": ("BLM", "Saint Barthélemy"),
    "BM": ("BMU", "Bermuda"),
    "BN": ("BRN", "Brunei Darussalam"),
    "BO": ("BOL", "Bolivia, Plurinational State of", "Bolivia", "Plurinational State of Bolivia"),
    "BQ": ("BES", "Bonaire, Sint Eustatius and Saba"),
    "BR": ("BRA", "Brazil", "Federative Republic of Brazil"),
    "BS": ("BHS", "Bahamas", "Commonwealth of the Bahamas"),
    "BT": ("BTN", "Bhutan", "Kingdom of Bhutan"),
    "BV": ("BVT", "Bouvet Island"),
    "BW": ("BWA", "Botswana", "Republic of Botswana"),
    "BY": ("BLR", "Belarus", "Republic of Belarus"),
    "BZ": ("BLZ", "Belize"),
    "CA": ("CAN", "Canada"),
    "CC": ("CCK", "Cocos (Keeling) Islands"),
    "CD": ("COD", "Congo, The Democratic Republic of the"),
    "CF": ("CAF", "Central African Republic"),
    "CG": ("COG", "Congo", "Republic of the Congo"),
    "CH": ("CHE", "Switzerland", "Swiss Confederation"),
    "CI": ("CIV", "Côte d'Ivoire", "Republic of Côte d'Ivoire"),
    "CK": ("COK", "Cook Islands"),
    "CL": ("CHL", "Chile", "Republic of Chile"),
    "CM": ("CMR", "Cameroon", "Republic of Cameroon"),
    "CN": ("CHN", "China", "People's Republic of China"),
    "CO": ("COL", "Colombia", "Republic of Colombia"),
    "CR": ("CRI", "Costa Rica", "Republic of Costa Rica"),
    "CU": ("CUB", "Cuba", "Republic of Cuba"),
    "CV": ("CPV", "Cabo Verde", "Republic of Cabo Verde"),
    "CW": ("CUW", "Curaçao"),
    "CX": ("CXR", "Christmas Island"),
    "CY": ("CYP", "Cyprus", "Republic of Cyprus"),
    "CZ": ("CZE", "Czechia", "Czech Republic"),
    "DE": ("DEU", "Germany", "Federal Republic of Germany"),
    "DJ": ("DJI", "Djibouti", "Republic of Djibouti"),
    "DK": ("DNK", "Denmark", "Kingdom of Denmark"),
    "DM": ("DMA", "Dominica", "Commonwealth of Dominica"),
    "DO": ("DOM", "Dominican Republic"),
    "DZ": ("DZA", "Algeria", "People's Democratic Republic of Algeria"),
    "EC": ("ECU", "Ecuador", "Republic of Ecuador"),
    "EE": ("EST", "Estonia", "Republic of Estonia"),
    "EG": ("EGY", "Egypt", "Arab Republic of Egypt"),
    "EH": ("ESH", "Western Sahara"),
    "ER": ("ERI", "Eritrea", "the State of Eritrea"),
    "ES": ("ESP", "Spain", "Kingdom of Spain"),
    "ET": ("ETH", "Ethiopia", "Federal Democratic Republic of Ethiopia"),
    "FI": ("FIN", "Finland", "Republic of Finland"),
    "FJ": ("FJI", "Fiji", "Republic of Fiji"),
    "FK": ("FLK", "Falkland Islands (Malvinas)"),
    "FM": ("FSM", "Micronesia, Federated States of", "Federated States of Micronesia"),
    "FO": ("FRO", "Faroe Islands"),
    "FR": ("FRA", "France", "French Republic"),
    "GA": ("GAB", "Gabon", "Gabonese Republic"),
    "GB": ("GBR", "United Kingdom", "United Kingdom of Great Britain and Northern Ireland"),
    "GD": ("GRD", "Grenada"),
    "GE": ("GEO", "Georgia"),
    "GF": ("GUF", "French Guiana"),
    "GG": ("GGY", "Guernsey"),
    "GH": ("GHA", "Ghana", "Republic of Ghana"),
    "GI": ("GIB", "Gibraltar"),
    "GL": ("GRL", "Greenland"),
    "GM": ("GMB", "Gambia", "Republic of the Gambia"),
    "GN": ("GIN", "Guinea", "Republic of Guinea"),
    "GP": ("GLP", "Guadeloupe"),
    "GQ": ("GNQ", "Equatorial Guinea", "Republic of Equatorial Guinea"),
    "GR": ("GRC", "Greece", "Hellenic Republic"),
    "GS": ("SGS", "South Georgia and the South Sandwich Islands"),
    "GT": ("GTM", "Guatemala", "Republic of Guatemala"),
    "GU": ("GUM", "Guam"),
    "GW": ("GNB", "Guinea-Bissau", "Republic of Guinea-Bissau"),
    "GY": ("GUY", "Guyana", "Republic of Guyana"),
    "HK": ("HKG", "Hong Kong", "Hong Kong Special Administrative Region of China"),
    "HM": ("HMD", "Heard Island and McDonald Islands"),
    "HN": ("HND", "Honduras", "Republic of Honduras"),
    "HR": ("HRV", "Croatia", "Republic of Croatia"),
    "HT": ("HTI", "Haiti", "Republic of Haiti"),
    "HU": ("HUN", "Hungary"),
    "ID": ("IDN", "Indonesia", "Republic of Indonesia"),
    "IE": ("IRL", "Ireland"),
    "IL": ("ISR", "Israel", "State of Israel"),
    "IM": ("IMN", "Isle of Man"),
    "IN": ("IND", "India", "Republic of India"),
    "IO": ("IOT", "British Indian Ocean Territory"),
    "IQ": ("IRQ", "Iraq", "Republic of Iraq"),
    "IR": ("IRN", "Iran, Islamic Republic of", "Iran", "Islamic Republic of Iran"),
    "IS": ("ISL", "Iceland", "Republic of Iceland"),
    "IT": ("ITA", "Italy", "Italian Republic"),
    "JE": ("JEY", "Jersey"),
    "JM": ("JAM", "Jamaica"),
    "JO": ("JOR", "Jordan", "Hashemite Kingdom of Jordan"),
    "JP": ("JPN", "Japan"),
    "KE": ("KEN", "Kenya", "Republic of Kenya"),
    "KG": ("KGZ", "Kyrgyzstan", "Kyrgyz Republic"),
    "KH": ("KHM", "Cambodia", "Kingdom of Cambodia"),
    "KI": ("KIR", "Kiribati", "Republic of Kiribati"),
    "KM": ("COM", "Comoros", "Union of the Comoros"),
    "KN": ("KNA", "Saint Kitts and Nevis"),
    "KP": ("PRK", "Korea, Democratic People's Republic of", "North Korea", "Democratic People's Republic of Korea"),
    "KR": ("KOR", "Korea, Republic of", "South Korea"),
    "KW": ("KWT", "Kuwait", "State of Kuwait"),
    "KY": ("CYM", "Cayman Islands"),
    "KZ": ("KAZ", "Kazakhstan", "Republic of Kazakhstan"),
    "LA": ("LAO", "Lao People's Democratic Republic", "Laos"),
    "LB": ("LBN", "Lebanon", "Lebanese Republic"),
    "LC": ("LCA", "Saint Lucia"),
    "LI": ("LIE", "Liechtenstein", "Principality of Liechtenstein"),
    "LK": ("LKA", "Sri Lanka", "Democratic Socialist Republic of Sri Lanka"),
    "LR": ("LBR", "Liberia", "Republic of Liberia"),
    "LS": ("LSO", "Lesotho", "Kingdom of Lesotho"),
    "LT": ("LTU", "Lithuania", "Republic of Lithuania"),
    "LU": ("LUX", "Luxembourg", "Grand Duchy of Luxembourg"),
    "LV": ("LVA", "Latvia", "Republic of Latvia"),
    "LY": ("LBY", "Libya"),
    "MA": ("MAR", "Morocco", "Kingdom of Morocco"),
    "MC": ("MCO", "Monaco", "Principality of Monaco"),
    "MD": ("MDA", "Moldova, Republic of", "Moldova", "Republic of Moldova"),
    "ME": ("MNE", "Montenegro"),
    "MF": ("MAF", "Saint Martin (French part)"),
    "MG": ("MDG", "Madagascar", "Republic of Madagascar"),
    "MH": ("MHL", "Marshall Islands", "Republic of the Marshall Islands"),
    "MK": ("MKD", "North Macedonia", "Republic of North Macedonia"),
    "ML": ("MLI", "Mali", "Republic of Mali"),
    "MM": ("MMR", "Myanmar", "Republic of Myanmar"),
    "MN": ("MNG", "Mongolia"),
    "MO": ("MAC", "Macao", "Macao Special Administrative Region of China"),
    "MP": ("MNP", "Northern Mariana Islands", "Commonwealth of the Northern Mariana Islands"),
    "MQ": ("MTQ", "Martinique"),
    "MR": ("MRT", "Mauritania", "Islamic Republic of Mauritania"),
    "MS": ("MSR", "Montserrat"),
    "MT": ("MLT", "Malta", "Republic of Malta"),
    "MU": ("MUS", "Mauritius", "Republic of Mauritius"),
    "MV": ("MDV", "Maldives", "Republic of Maldives"),
    "MW": ("MWI", "Malawi", "Republic of Malawi"),
    "MX": ("MEX", "Mexico", "United Mexican States"),
    "MY": ("MYS", "Malaysia"),
    "MZ": ("MOZ", "Mozambique", "Republic of Mozambique"),
    "NA": ("NAM", "Namibia", "Republic of Namibia"),
    "NC": ("NCL", "New Caledonia"),
    "NE": ("NER", "Niger", "Republic of the Niger"),
    "NF": ("NFK", "Norfolk Island"),
    "NG": ("NGA", "Nigeria", "Federal Republic of Nigeria"),
    "NI": ("NIC", "Nicaragua", "Republic of Nicaragua"),
    "NL": ("NLD", "Netherlands", "Kingdom of the Netherlands"),
    "NO": ("NOR", "Norway", "Kingdom of Norway"),
    "NP": ("NPL", "Nepal", "Federal Democratic Republic of Nepal"),
    "NR": ("NRU", "Nauru", "Republic of Nauru"),
    "NU": ("NIU", "Niue"),
    "NZ": ("NZL", "New Zealand"),
    "OM": ("OMN", "Oman", "Sultanate of Oman"),
    "PA": ("PAN", "Panama", "Republic of Panama"),
    "PE": ("PER", "Peru", "Republic of Peru"),
    "PF": ("PYF", "French Polynesia"),
    "PG": ("PNG", "Papua New Guinea", "Independent State of Papua New Guinea"),
    "PH": ("PHL", "Philippines", "Republic of the Philippines"),
    "PK": ("PAK", "Pakistan", "Islamic Republic of Pakistan"),
    "PL": ("POL", "Poland", "Republic of Poland"),
    "PM": ("SPM", "Saint Pierre and Miquelon"),
    "PN": ("PCN", "Pitcairn"),
    "PR": ("PRI", "Puerto Rico"),
    "PS": ("PSE", "Palestine, State of", "the State of Palestine"),
    "PT": ("PRT", "Portugal", "Portuguese Republic"),
    "PW": ("PLW", "Palau", "Republic of Palau"),
    "PY": ("PRY", "Paraguay", "Republic of Paraguay"),
    "QA": ("QAT", "Qatar", "State of Qatar"),
    "RE": ("REU", "Réunion"),
    "RO": ("ROU", "Romania"),
    "RS": ("SRB", "Serbia", "Republic of Serbia"),
    "RU": ("RUS", "Russian Federation"),
    "RW": ("RWA", "Rwanda", "Rwandese Republic"),
    "SA": ("SAU", "Saudi Arabia", "Kingdom of Saudi Arabia"),
    "SB": ("SLB", "Solomon Islands"),
    "SC": ("SYC", "Seychelles", "Republic of Seychelles"),
    "SD": ("SDN", "Sudan", "Republic of the Sudan"),
    "SE": ("SWE", "Sweden", "Kingdom of Sweden"),
    "SG": ("SGP", "Singapore", "Republic of Singapore"),
    "SH": ("SHN", "Saint Helena, Ascension and Tristan da Cunha"),
    "SI": ("SVN", "Slovenia", "Republic of Slovenia"),
    "SJ": ("SJM", "Svalbard and Jan Mayen"),
    "SK": ("SVK", "Slovakia", "Slovak Republic"),
    "SL": ("SLE", "Sierra Leone", "Republic of Sierra Leone"),
    "SM": ("SMR", "San Marino", "Republic of San Marino"),
    "SN": ("SEN", "Senegal", "Republic of Senegal"),
    "SO": ("SOM", "Somalia", "Federal Republic of Somalia"),
    "SR": ("SUR", "Suriname", "Republic of Suriname"),
    "SS": ("SSD", "South Sudan", "Republic of South Sudan"),
    "ST": ("STP", "Sao Tome and Principe", "Democratic Republic of Sao Tome and Principe"),
    "SV": ("SLV", "El Salvador", "Republic of El Salvador"),
    "SX": ("SXM", "Sint Maarten (Dutch part)"),
    "SY": ("SYR", "Syrian Arab Republic", "Syria"),
    "SZ": ("SWZ", "Eswatini", "Kingdom of Eswatini"),
    "TC": ("TCA", "Turks and Caicos Islands"),
    "TD": ("TCD", "Chad", "Republic of Chad"),
    "TF": ("ATF", "French Southern Territories"),
    "TG": ("TGO", "Togo", "Togolese Republic"),
    "TH": ("THA", "Thailand", "Kingdom of Thailand"),
    "TJ": ("TJK", "Tajikistan", "Republic of Tajikistan"),
    "TK": ("TKL", "Tokelau"),
    "TL": ("TLS", "Timor-Leste", "Democratic Republic of Timor-Leste"),
    "TM": ("TKM", "Turkmenistan"),
    "TN": ("TUN", "Tunisia", "Republic of Tunisia"),
    "TO": ("TON", "Tonga", "Kingdom of Tonga"),
    "TR": ("TUR", "Türkiye", "Republic of Türkiye"),
    "TT": ("TTO", "Trinidad and Tobago", "Republic of Trinidad and Tobago"),
    "TV": ("TUV", "Tuvalu"),
    "TW": ("TWN", "Taiwan, Province of China", "Taiwan"),
    "TZ": ("TZA", "Tanzania, United Republic of", "Tanzania", "United Republic of Tanzania"),
    "UA": ("UKR", "Ukraine"),
    "UG": ("UGA", "Uganda", "Republic of Uganda"),
    "UM": ("UMI", "United States Minor Outlying Islands"),
    "US": ("USA", "United States", "United States of America"),
    "UY": ("URY", "Uruguay", "Eastern Republic of Uruguay"),
    "UZ": ("UZB", "Uzbekistan", "Republic of Uzbekistan"),
    "VA": ("VAT", "Holy See (Vatican City State)"),
    "VC": ("VCT", "Saint Vincent and the Grenadines"),
    "VE": ("VEN", "Venezuela, Bolivarian Republic of", "Venezuela", "Bolivarian Republic of Venezuela"),
    "VG": ("VGB", "Virgin Islands, British", "British Virgin Islands"),
    "VI": ("VIR", "Virgin Islands, U.S.", "Virgin Islands of the United States"),
    "VN": ("VNM", "Viet Nam", "Vietnam", "Socialist Republic of Viet Nam"),
    "VU": ("VUT", "Vanuatu", "Republic of Vanuatu"),
    "WF": ("WLF", "Wallis and Futuna"),
    "WS": ("WSM", "Samoa", "Independent State of Samoa"),
    "YE": ("YEM", "Yemen", "Republic of Yemen"),
    "YT": ("MYT", "Mayotte"),
    "ZA": ("ZAF", "South Africa", "Republic of South Africa"),
    "ZM": ("ZMB", "Zambia", "Republic of Zambia"),
    "ZW": ("ZWE", "Zimbabwe", "Republic of Zimbabwe"),
}

# Further spellings that directories carry in ``country``, each unambiguous: everyday English forms,
# former names and the country's own name in a Latin script.
COUNTRY_NAME_VARIANTS: dict[str, str] = {
    # United States
    "U.S.": "US", "U.S.A.": "US", "United States": "US", "United States of America": "US",
    # United Kingdom; England, Scotland, Wales and Northern Ireland use the usage location GB.
    "UK": "GB", "U.K.": "GB", "Great Britain": "GB", "Britain": "GB", "England": "GB", "Scotland": "GB",
    "Wales": "GB", "Northern Ireland": "GB",
    "UAE": "AE", "Russia": "RU", "Czech Republic": "CZ", "Česko": "CZ", "Česká republika": "CZ",
    "Turkey": "TR", "Vietnam": "VN", "Ivory Coast": "CI", "Cape Verde": "CV",
    "Swaziland": "SZ", "Burma": "MM", "Brunei": "BN",
    "Palestine": "PS", "Vatican": "VA", "Vatican City": "VA", "Holy See": "VA", "Macau": "MO",
    "Republic of Korea": "KR", "DR Congo": "CD", "DRC": "CD", "Democratic Republic of the Congo": "CD",
    "Republic of Ireland": "IE", "Éire": "IE", "Holland": "NL", "The Netherlands": "NL",
    "Deutschland": "DE", "Österreich": "AT", "Schweiz": "CH", "Suisse": "CH", "Svizzera": "CH",
    "España": "ES", "Italia": "IT", "Nederland": "NL", "België": "BE", "Belgique": "BE", "Belgien": "BE",
    "Luxemburg": "LU", "Sverige": "SE", "Norge": "NO", "Danmark": "DK", "Suomi": "FI", "Ísland": "IS",
    "Polska": "PL", "Magyarország": "HU", "România": "RO", "Hrvatska": "HR", "Slovensko": "SK",
    "Slovenija": "SI", "Brasil": "BR", "México": "MX", "Perú": "PE",
}

# Names that directories use for more than one country; they map to none. ISO's short name "Congo" is the
# Republic of the Congo, but people write it for the Democratic Republic of the Congo too.
AMBIGUOUS_COUNTRY_NAMES = frozenset({"congo", "korea"})


def _normalise_name(value: str) -> str:
    """Fold a country value for lookup: NFKC, case, whitespace, dots, typographic apostrophes and a leading "the"."""
    text = unicodedata.normalize("NFKC", value).casefold().replace(".", "").replace("\u2019", "'")
    text = re.sub(r"\s+", " ", text).strip()
    return text.removeprefix("the ")


@lru_cache(maxsize=1)
def _country_lookup() -> dict[str, str]:
    lookup: dict[str, str] = {}
    for code, (alpha3, *names) in ISO_3166_COUNTRIES.items():
        lookup[_normalise_name(code)] = code
        lookup[_normalise_name(alpha3)] = code
        for name in names:
            lookup[_normalise_name(name)] = code
    for name, code in COUNTRY_NAME_VARIANTS.items():
        lookup[_normalise_name(name)] = code
    for name in AMBIGUOUS_COUNTRY_NAMES:
        lookup.pop(name, None)
    return lookup


def is_usage_location(code: str) -> bool:
    """Return whether ``code`` is an ISO 3166-1 alpha-2 code, in upper case as Graph stores it."""
    return code in ISO_3166_COUNTRIES


def usage_location_from_country(country: str) -> str:
    """Return the alpha-2 code for a country code or name, or "" when the value maps to no single country."""
    if not country or not country.strip():
        return ""
    return _country_lookup().get(_normalise_name(country), "")


# Filling in a user's usage location


@dataclass(frozen=True)
class UsageLocationChoice:
    """The usage location the portal would set on a user, and where it comes from."""

    code: str
    source: str  # "country" or "pool"
    source_pool: Pool | None = None


def default_usage_location(pool: Pool) -> tuple[str, Pool | None]:
    """Return the default usage location of the pool, else of its parent, with the pool that sets it."""
    for candidate in (pool, pool.parent if pool.parent_id else None):
        if candidate is not None and candidate.default_usage_location:
            return candidate.default_usage_location, candidate
    return "", None


def choose_usage_location(user: DirectoryUser) -> UsageLocationChoice | None:
    """Choose the usage location for a user who has none: from the country, else the user's pool default."""
    code = usage_location_from_country(user.country)
    if code:
        return UsageLocationChoice(code=code, source="country")
    pool = Pool.objects.select_related("parent").filter(pk=user.pool_id).first()
    if pool is not None:
        code, source_pool = default_usage_location(pool)
        if code:
            return UsageLocationChoice(code=code, source="pool", source_pool=source_pool)
    return None


def missing_usage_location_message(user: DirectoryUser, pool: Pool) -> str:
    if user.country:
        return _(
            "%(user)s has no usage location, and the portal cannot map the country \"%(country)s\" to an ISO "
            "country code. Pool %(pool)s has no default usage location either. Set the user's usage location "
            "or country in the Microsoft 365 admin center or Entra ID and run a sync, or ask a tenant "
            "administrator to set the pool's default usage location, then try again."
        ) % {"user": user.user_principal_name, "country": user.country, "pool": str(pool)}
    return _(
        "%(user)s has no usage location and no country, and pool %(pool)s has no default usage location. Set "
        "the user's usage location or country in the Microsoft 365 admin center or Entra ID and run a sync, "
        "or ask a tenant administrator to set the pool's default usage location, then try again."
    ) % {"user": user.user_principal_name, "pool": str(pool)}


def set_user_usage_location(
    *, acting_user: AbstractBaseUser | None, pool: Pool, user: DirectoryUser, choice: UsageLocationChoice
) -> str:
    """Set the user's usage location through Graph (PATCH /users/{id}), update the mirror and audit it.

    Returns Graph's request id. Raises GraphRejected when Graph refuses the change; that failure is audited.
    """
    before = user.usage_location or None
    audit = {"acting_user": acting_user, "tenant": pool.tenant, "pool": pool, "user": user}
    try:
        response = GraphClient(pool.tenant).request(
            "PATCH", f"users/{user.user_id}", json={"usageLocation": choice.code}
        )
    except GraphError as exc:
        message = describe_graph_error(exc, user=user.user_principal_name, sku="")
        record_event(
            action=AuditAction.USAGE_LOCATION_SET, outcome=Outcome.FAILED, message=message,
            graph_request_id=exc.request_id, before={"usageLocation": before},
            after={"usageLocation": choice.code}, **audit,
        )
        logger.warning(
            "Setting usage location %s on user %s in pool %s (tenant %s) failed in Graph: %s",
            choice.code, user.user_id, pool.pk, pool.tenant.tenant_id, exc,
        )
        raise GraphRejected(message, graph_message=exc.message, request_id=exc.request_id) from exc

    if choice.source == "country":
        reason = _("Taken from the user's country \"%(country)s\".") % {"country": user.country}
    else:
        reason = _("Taken from the default usage location of pool %(pool)s.") % {"pool": str(choice.source_pool)}
    with transaction.atomic():
        DirectoryUser.objects.filter(pk=user.pk).update(usage_location=choice.code)
        user.usage_location = choice.code
        record_event(
            action=AuditAction.USAGE_LOCATION_SET, graph_request_id=response.request_id, message=reason,
            before={"usageLocation": before}, after={"usageLocation": choice.code, "source": choice.source}, **audit,
        )
    logger.info(
        "Set usage location %s (from %s) on user %s in pool %s (tenant %s, request-id %s)",
        choice.code, choice.source, user.user_id, pool.pk, pool.tenant.tenant_id, response.request_id,
    )
    return response.request_id


def ensure_usage_location(*, acting_user: AbstractBaseUser | None, pool: Pool, user: DirectoryUser) -> None:
    """Raise AssignmentRejected when the user has no usage location and none can be chosen."""
    if user.usage_location:
        return
    if choose_usage_location(user) is None:
        raise AssignmentRejected(missing_usage_location_message(user, pool))


def set_default_usage_location(*, acting_user: AbstractBaseUser, pool: Pool, code: str) -> Pool:
    """Set (or with "" clear) the pool's default usage location; tenant administrators only."""
    if not scoping.can_administer_tenant(acting_user, pool.tenant):
        raise Http404("No such pool.")
    typed = code.strip()
    code = typed.upper()
    if code and not is_usage_location(code):
        # Common spellings such as UK, USA or Germany map to one code, which the message offers.
        suggestion = usage_location_from_country(typed)
        if suggestion:
            raise PoolsError(
                _("\"%(code)s\" is not an ISO 3166-1 alpha-2 country code. Did you mean %(suggestion)s (%(country)s)? "
                  "Enter that code, or leave the field empty to remove the default.")
                % {"code": typed, "suggestion": suggestion, "country": ISO_3166_COUNTRIES[suggestion][1]}
            )
        raise PoolsError(
            _("\"%(code)s\" is not an ISO 3166-1 alpha-2 country code. Enter two letters such as DE, FR or US, or "
              "leave the field empty to remove the default.") % {"code": code}
        )
    with transaction.atomic():
        locked = Pool.objects.select_for_update().get(pk=pool.pk)
        before = locked.default_usage_location
        locked.default_usage_location = code
        locked.save(update_fields=["default_usage_location"])
        pool.default_usage_location = code
        record_event(
            acting_user=acting_user, action=AuditAction.POOL_SETTINGS_CHANGED, tenant=pool.tenant, pool=pool,
            target=str(pool), before={"defaultUsageLocation": before or None},
            after={"defaultUsageLocation": code or None},
        )
    logger.info("Default usage location of pool %s (tenant %s): %r -> %r", pool.pk, pool.tenant_id, before, code)
    return pool
