"""Door kept for Rec SDK scripts: Rec SDK's shared package ``rec_sdk_common`` (rank queries), installed with mx_rec."""
