# Deploy-specific values — the only file an operator edits per deployment.
{
  services.flashpods = {
    # `wg pubkey < privatekey` on the laptop.
    wireguard.laptopPublicKey = "REPLACE-WITH-THE-LAPTOP-WIREGUARD-PUBLIC-KEY=";

    # Job capacity (null = the whole machine, memory less 2 GiB).
    capacity.cpus = null;
    capacity.memoryGb = null;
  };

  # SSH keys of the operators.
  users.users.root.openssh.authorizedKeys.keys = [
    # "ssh-ed25519 AAAA... operator@laptop"
  ];
}
