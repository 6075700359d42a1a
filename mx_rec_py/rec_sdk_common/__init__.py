"""Door kept for Rec SDK scripts: Rec SDK's shared package ``rec_sdk_common`` (rank queries), installed with mx_rec."""
from rec_sdk_common.communication.hccl import hccl_info  # noqa: E402,F401  (``import rec_sdk_common`` then attribute access, as Rec SDK scripts do)
