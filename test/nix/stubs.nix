# Offline stand-ins for what the Flashpods modules take from nixpkgs, so that `nix-instantiate
# --eval` can run them without a Nix store or a nixpkgs checkout (neither is reachable here).
#
# - `lib`: the functions the modules use, with nixpkgs' semantics for the cases they use.
# - `pkgs`: a FIXED inventory of the packages the modules name; a module naming another one
#   fails the check ("attribute 'x' missing") — add it here on purpose, after checking that
#   nixpkgs has it.
# - `nixosOptions`: declarations of the few NixOS options the modules *read* (not the ones they
#   set), with nixpkgs' defaults.
#
# What this cannot check: that the options the modules SET exist in NixOS with those types
# (that needs nixpkgs: `nix flake check ./nix` on a machine with network).
let
  # As nixpkgs' lib.escapeRegex: the characters special in POSIX extended regexps.
  escapeRegex = builtins.replaceStrings
    [ "\\" "[" "{" "(" ")" "^" "$" "?" "*" "+" "|" "." ]
    [ "\\\\" "\\[" "\\{" "\\(" "\\)" "\\^" "\\$" "\\?" "\\*" "\\+" "\\|" "\\." ];

  mkType = name: check: { inherit name check; _type = "option-type"; };

  types = {
    str = mkType "string" builtins.isString;
    int = mkType "signed integer" builtins.isInt;
    bool = mkType "boolean" builtins.isBool;
    port = mkType "16 bit unsigned integer" (v: builtins.isInt v && v >= 0 && v <= 65535);
    package = mkType "package" (v: builtins.isAttrs v && v ? outPath);
    path = mkType "path" (v: builtins.isPath v || (builtins.isString v && builtins.substring 0 1 v == "/"));
    nullOr = t: mkType "null or ${t.name}" (v: v == null || t.check v);
    listOf = t: mkType "list of ${t.name}" (v: builtins.isList v && builtins.all t.check v);
    attrsOf = t: mkType "attribute set of ${t.name}" (v: builtins.isAttrs v && builtins.all t.check (builtins.attrValues v));
    enum = values: mkType "one of ${builtins.toJSON values}" (v: builtins.elem v values);
  };

  lib = rec {
    inherit types;

    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = name: mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = "Whether to enable ${name}.";
    };
    literalExpression = text: { _type = "literalExpression"; inherit text; };

    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkOverride = priority: content: { _type = "override"; inherit priority content; };
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;

    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: xs: if cond then xs else [ ];
    optionalString = cond: s: if cond then s else "";
    optionalAttrs = cond: as: if cond then as else { };
    boolToString = b: if b then "true" else "false";
    concatStrings = builtins.concatStringsSep "";
    concatMapStrings = f: xs: concatStrings (map f xs);
    concatMapStringsSep = sep: f: xs: builtins.concatStringsSep sep (map f xs);
    hasPrefix = pre: s: builtins.substring 0 (builtins.stringLength pre) s == pre;
    removePrefix = pre: s: if hasPrefix pre s then builtins.substring (builtins.stringLength pre) (builtins.stringLength s) s else s;
    hasInfix = infix: s: builtins.length (builtins.split (escapeRegex infix) s) > 1;
    splitString = sep: s: builtins.filter builtins.isString (builtins.split (escapeRegex sep) s);
    escapeShellArg = s: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s)}'";
    escapeShellArgs = xs: builtins.concatStringsSep " " (map escapeShellArg xs);
    unique = builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ];
    filterAttrs = pred: set: builtins.listToAttrs (builtins.concatMap
      (name: if pred name set.${name} then [ { inherit name; value = set.${name}; } ] else [ ])
      (builtins.attrNames set));
    mapAttrsToList = f: set: map (name: f name set.${name}) (builtins.attrNames set);

    # A source filter is recorded, not applied: the check calls `filter` on sample paths.
    cleanSourceWith = { src, filter ? (_: _: true), name ? "source" }:
      { _type = "stub-source"; outPath = "/nix/store/00000000000000000000000000000000-${name}"; inherit src filter name; };

    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  };

  mkPkg = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };

  pkgs = {
    inherit lib;
    callPackage = fn: overrides:
      let f = if builtins.isFunction fn then fn else import fn;
      in f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // overrides);

    buildNpmPackage = args: mkPkg "${args.pname}-${args.version}" // (args.passthru or { }) // { stubArgs = args; };
    importNpmLock = {
      __functor = _self: { npmRoot, ... }: mkPkg "npm-deps" // { inherit npmRoot; };
      npmConfigHook = mkPkg "npm-config-hook";
    };

    nodejs_20 = mkPkg "nodejs-20";
    python3 = mkPkg "python3";
    podman = mkPkg "podman";
    slirp4netns = mkPkg "slirp4netns";
    rsync = mkPkg "rsync";
    spire = mkPkg "spire" // { server = mkPkg "spire-server"; agent = mkPkg "spire-agent"; };
    systemd = mkPkg "systemd";
    coreutils = mkPkg "coreutils";
    gnused = mkPkg "gnused";
    gnugrep = mkPkg "gnugrep";
    jq = mkPkg "jq";
    curl = mkPkg "curl";
    openssl = mkPkg "openssl";
    sqlite = mkPkg "sqlite";
    wireguard-tools = mkPkg "wireguard-tools";
  };

  nixosOptions = {
    assertions = lib.mkOption { type = types.listOf (mkType "assertion" builtins.isAttrs); default = [ ]; };
    warnings = lib.mkOption { type = types.listOf types.str; default = [ ]; };
    systemd.package = lib.mkOption { type = types.package; default = pkgs.systemd; };
    virtualisation.podman.package = lib.mkOption { type = types.package; default = pkgs.podman; };
  };
in
{
  inherit lib pkgs nixosOptions;
  modulesPath = "/stub-nixpkgs/nixos/modules";
}
