"""``import cupyx`` under ``bitshare run --remote``: replaced, with its ``scipy`` modules, by remote
CuPy's (bitshare.remote.cupy), whose functions are the GPU server's."""

import sys

from bitshare.remote.cupy import namespace

sys.modules.update({"cupyx": namespace.CUPYX, "cupyx.scipy": namespace.CUPYX_SCIPY, **namespace.SCIPY})
