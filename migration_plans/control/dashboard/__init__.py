"""The migration dashboard: the control plane's ASGI app under the proxy's admin prefix.

It reads the proxy only through :class:`strangler_proxy.introspection.ProxyView`;
``strangler proxy serve`` mounts it as ``{admin prefix}dashboard``:

    StranglerProxy(config, admin_mounts={MOUNT: mount})

    app.py      Dashboard: sign-in, the page, its data, reconciler reports, static files
    data.py     Sources: every section, read from the stores the other packages write
    html.py     the page and its sections
    svgplot.py  small SVG time plots
"""

from migration_plans.control.dashboard.app import COOKIE, MOUNT, Dashboard, mount
from migration_plans.control.dashboard.data import Sources

__all__ = ["COOKIE", "MOUNT", "Dashboard", "Sources", "mount"]
