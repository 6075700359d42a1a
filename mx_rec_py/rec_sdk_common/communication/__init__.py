"""``rec_sdk_common.communication``: see ``rec_sdk_common.communication.hccl.hccl_info``."""
