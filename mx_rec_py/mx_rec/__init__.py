"""mx_rec: Rec SDK programming model on CPUs and GPUs."""
