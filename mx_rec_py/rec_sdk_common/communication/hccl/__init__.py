"""``rec_sdk_common.communication.hccl``: see ``hccl_info``."""
