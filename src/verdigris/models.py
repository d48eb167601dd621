"""Imports every domain's tables so that the metadata is complete (for migrations and tests)."""

from verdigris.accounts import models as accounts_models  # noqa: F401
from verdigris.channels.sandbox import models as sandbox_models  # noqa: F401
from verdigris.channels.whatsapp_cloud import models as cloud_models  # noqa: F401
from verdigris.channels.whatsapp_web import models as waweb_models  # noqa: F401
from verdigris.chats import models as chats_models  # noqa: F401
from verdigris.customers import models as customers_models  # noqa: F401
from verdigris.greenapi import ratelimit as ratelimit_models  # noqa: F401
from verdigris.instances import models as instances_models  # noqa: F401
from verdigris.licensing import models as licensing_models  # noqa: F401
from verdigris.media import models as media_models  # noqa: F401
from verdigris.messaging import models as messaging_models  # noqa: F401
from verdigris.screening import models as screening_models  # noqa: F401
from verdigris.sendpolicy import models as sendpolicy_models  # noqa: F401
from verdigris.store import changes as cluster_models  # noqa: F401
from verdigris.store import leases as lease_models  # noqa: F401
from verdigris.webhooks import models as webhook_models  # noqa: F401
