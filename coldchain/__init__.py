"""coldchain: cold-chain shipment monitoring (docs/ are the contract with users).

Loggers publish over MQTT; the pipeline decodes, stores and evaluates their
readings against product stability limits and raises alerts. The public
names below are what other programs may import; everything else is internal.
"""

from coldchain.alerts import Alert, alert_id
from coldchain.custody import CustodyEvent, decode_custody_event
from coldchain.decoding import decode_status, decode_telemetry
from coldchain.dossier.manifest import verify_dossier
from coldchain.errors import (
    AlertError,
    BrokerError,
    ColdchainError,
    ConfigError,
    DecodeError,
    DeliveryError,
    DossierError,
    ImportFileError,
    IngestError,
    NotFoundError,
    ShipmentError,
    SigningError,
    StoreError,
)
from coldchain.evaluation import Evaluation, evaluate
from coldchain.mkt import mkt_c
from coldchain.models import Reading, Reject, Shipment, ShipmentStatus
from coldchain.notify import verify_signature
from coldchain.profiles import Profile, ProfileSet, load_profiles, parse_profile
from coldchain.routing import AlertRouting, load_routing
from coldchain.streaming import ShipmentMonitor

__version__ = "0.1.0"

__all__ = [
    "Alert",
    "AlertError",
    "AlertRouting",
    "BrokerError",
    "ColdchainError",
    "ConfigError",
    "CustodyEvent",
    "DecodeError",
    "DeliveryError",
    "DossierError",
    "Evaluation",
    "ImportFileError",
    "IngestError",
    "NotFoundError",
    "Profile",
    "ProfileSet",
    "Reading",
    "Reject",
    "Shipment",
    "ShipmentError",
    "ShipmentMonitor",
    "ShipmentStatus",
    "SigningError",
    "StoreError",
    "__version__",
    "alert_id",
    "decode_custody_event",
    "decode_status",
    "decode_telemetry",
    "evaluate",
    "load_profiles",
    "load_routing",
    "mkt_c",
    "parse_profile",
    "verify_dossier",
    "verify_signature",
]
