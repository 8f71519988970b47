"""The running daemon: lifecycle and reload, connector stacks, scheduler jobs, push intake, failure policy, replicas."""
