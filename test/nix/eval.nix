# Evaluates the Flashpods flake and its NixOS modules offline, with a small module evaluator
# (imports, option declarations with defaults and type checks, mkIf / mkMerge / mkDefault /
# mkForce, list concatenation, conflicting-definition errors, assertions) over the stubs of
# ./stubs.nix. Run by scripts/nix-check.sh:
#
#   nix-instantiate --eval --strict --json --store dummy:// test/nix/eval.nix
#
# Result: { ok; problems = [ … ]; deployed = <cleaned config of the flake's host>; … }.
# `siteModules`: more modules for the deployed host, a deployment's own site values (the VM
# of scripts/flashpods-vm passes scripts/vm/site.nix through `nix-check.sh --host-module`).
{ repo ? ../.., siteModules ? [ ] }:

let
  stubs = import ./stubs.nix;
  inherit (stubs) lib pkgs;

  testKey = "spExPOdH2g5Z0YGt2Hp0IkiqwGsoBAFp+HTcWVDBzfo=";

  missing = { _stubMissing = true; };
  isMissing = v: builtins.isAttrs v && v ? _stubMissing;
  wrapperTypes = [ "if" "merge" "override" ];
  isTree = v: builtins.isAttrs v && !(v ? outPath) && !(v ? _type) && !(v ? _stubMissing) && !(v ? __functor);
  isOption = v: builtins.isAttrs v && (v._type or null) == "option";
  showPath = builtins.concatStringsSep ".";

  # ---- modules -------------------------------------------------------------------------------
  isExternal = m: (builtins.isString m || builtins.isPath m) && lib.hasPrefix stubs.modulesPath (toString m);

  load = config: m:
    let
      fn = if builtins.isPath m || builtins.isString m then import m else m;
      args = { inherit config lib pkgs; inherit (stubs) modulesPath; options = { }; };
      value = if builtins.isFunction fn then fn args else fn;
      structured = value ? options || value ? config;
    in
    {
      key = if builtins.isPath m || builtins.isString m then toString m else null;
      imports = value.imports or [ ];
      options = value.options or { };
      config =
        if structured then value.config or { }
        else builtins.removeAttrs value [ "imports" "_file" "key" "meta" "disabledModules" ];
    };

  # Breadth-first over imports; a file imported twice counts once (as NixOS does).
  collect = config: seen: queue:
    if queue == [ ] then { modules = [ ]; external = [ ]; }
    else
      let
        m = builtins.head queue;
        rest = builtins.tail queue;
      in
      if isExternal m then
        let r = collect config seen rest; in r // { external = [ (toString m) ] ++ r.external; }
      else
        let l = load config m; in
        if l.key != null && builtins.elem l.key seen then collect config seen rest
        else
          let r = collect config (seen ++ lib.optional (l.key != null) l.key) (l.imports ++ rest);
          in r // { modules = [ l ] ++ r.modules; };

  # ---- definitions ---------------------------------------------------------------------------
  # Push mkIf / mkMerge / mkOverride down to plain values; conditions are kept, not forced, so
  # attribute names can be known without evaluating any condition (no infinite recursion).
  expand = d:
    let v = d.value; t = if builtins.isAttrs v then v._type or null else null; in
    if t == "if" then expand (d // { value = v.content; conds = d.conds ++ [ v.condition ]; })
    else if t == "merge" then builtins.concatMap (c: expand (d // { value = c; })) v.contents
    else if t == "override" then expand (d // { value = v.content; prio = v.priority; })
    else [ d ];

  mergeDefs = path: defs:
    let xs = builtins.concatMap expand defs; in
    if builtins.length xs == 0 then missing
    else if builtins.all (d: isTree d.value) xs then
      let names = lib.unique (builtins.concatMap (d: builtins.attrNames d.value) xs); in
      builtins.listToAttrs (map
        (n: {
          name = n;
          value = mergeDefs (path ++ [ n ]) (builtins.concatMap (d: if d.value ? ${n} then [ (d // { value = d.value.${n}; }) ] else [ ]) xs);
        })
        names)
    else if builtins.any (d: isTree d.value) xs then
      throw "${showPath path}: attribute-set and non-attribute-set definitions mixed (in ${toString (map (d: d.file) xs)})"
    else
      let
        act = builtins.filter (d: builtins.all (c: c) d.conds) xs;
        prio = builtins.foldl' (a: d: if d.prio < a then d.prio else a) 10000 act;
        top = builtins.filter (d: d.prio == prio) act;
        vals = map (d: d.value) top;
      in
      if act == [ ] then missing
      else if builtins.all builtins.isList vals then builtins.concatLists vals
      else if builtins.all (v: v == builtins.head vals) vals then builtins.head vals
      else throw "${showPath path}: conflicting definitions ${builtins.toJSON (map (d: { file = d.file; value = clean d.value; }) top)}";

  # ---- options -------------------------------------------------------------------------------
  mergeDecls = path: a: b:
    if isOption a || isOption b then throw "option ${showPath path} declared twice"
    else a // builtins.mapAttrs (n: v: if a ? ${n} then mergeDecls (path ++ [ n ]) a.${n} v else v) b;

  optionValue = path: decl: merged:
    let
      v =
        if isMissing merged then
          (if decl ? default then decl.default else throw "option ${showPath path} is used but has no value (no default)")
        else merged;
    in
    if decl.type.check v then v
    else throw "option ${showPath path}: ${builtins.toJSON (clean v)} is not a ${decl.type.name}";

  # The config modules see: declared options with defaults and type checks, and everything
  # else as merged from the definitions.
  combine = path: decl: merged:
    if isOption decl then optionValue path decl merged
    else
      let
        mergedNames = if isTree merged then builtins.attrNames merged else [ ];
        names = lib.unique (builtins.attrNames decl ++ mergedNames);
      in
      builtins.listToAttrs (map
        (n: {
          name = n;
          value =
            if decl ? ${n} then combine (path ++ [ n ]) decl.${n} (if builtins.elem n mergedNames then merged.${n} else missing)
            else merged.${n};
        })
        names);

  # A value no active definition produced (e.g. everything under a false mkIf).
  absent = v: isMissing v || (isTree v && v != { } && builtins.all absent (builtins.attrValues v));

  # Everything JSON can show: no functions, no absent values, packages as store paths.
  clean = v:
    if builtins.isFunction v then "<function>"
    else if builtins.isAttrs v then
      (if v ? outPath then toString v.outPath
       else if v ? _stubMissing then null
       else if v ? __functor then "<functor>"
       else builtins.mapAttrs (_: clean) (lib.filterAttrs (_: x: !(absent x)) v))
    else if builtins.isList v then map clean v
    else if builtins.isPath v then toString v
    else v;

  evalModules = modules:
    let
      collected = collect config [ ] modules;
      decls = builtins.foldl' (mergeDecls [ ]) stubs.nixosOptions (map (m: m.options) collected.modules);
      merged = mergeDefs [ ] (map (m: { value = m.config; conds = [ ]; prio = 100; file = toString m.key; }) collected.modules);
      config = combine [ ] decls merged;
      failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
    in
    {
      inherit config failedAssertions;
      files = builtins.filter (k: k != null) (map (m: m.key) collected.modules);
      inherit (collected) external;
    };

  # ---- the flake -----------------------------------------------------------------------------
  flake = import (repo + "/nix/flake.nix");
  stubNixpkgs = {
    lib = lib // { nixosSystem = args: { _type = "stub-nixos-system"; inherit args; }; };
    legacyPackages.x86_64-linux = pkgs;
  };
  outputs = flake.outputs { self = outputs; nixpkgs = stubNixpkgs; };
  hostModules = outputs.nixosConfigurations.flashpods.args.modules;
  withKey = { services.flashpods.wireguard.laptopPublicKey = lib.mkForce testKey; };

  # The flake's host with a real-looking laptop key: what an operator deploys.
  # With siteModules, they stand in for the operator's site values, laptop key included.
  deployed = evalModules (hostModules ++ (if siteModules == [ ] then [ withKey ] else siteModules));
  # As committed: the placeholder key must be refused.
  asShipped = evalModules hostModules;
  # Every optional branch switched on.
  variant = evalModules (hostModules ++ [
    withKey
    {
      services.flashpods = {
        capacity.cpus = lib.mkForce 6;
        capacity.memoryGb = lib.mkForce 12;
        extraEnvironment.FLASHPODS_UPLOADS_TOTAL_BYTES = "21474836480";
        prePullImages = false;
        spire.dockerApiVersion = "1.41";
        spire.containerIdCgroupMatchers = [ "/user.slice/user-1500.slice/user@1500.service/user.slice/libpod-<id>.scope/container" ];
        spire.allowUnauthenticatedVerifiers = false;
      };
    }
  ]);
  # An address option changed without the tested ruleset file: must be refused.
  movedLaptop = evalModules (hostModules ++ [ withKey { services.flashpods.network.laptopAddress = "10.0.0.3"; } ]);

  pkgArgs = deployed.config.services.flashpods.package.stubArgs;
  srcFilter = pkgArgs.src.filter;
  inSource = rel: srcFilter "${toString repo}/${rel}" "regular";

  report = c: clean {
    services.flashpods = c.services.flashpods;
    services.openssh = c.services.openssh;
    users = c.users;
    systemd = {
      inherit (c.systemd) services paths tmpfiles user;
    };
    networking = {
      inherit (c.networking) nftables firewall wireguard;
    };
    virtualisation = c.virtualisation;
    environment.etc = c.environment.etc;
    boot.kernel.sysctl = c.boot.kernel.sysctl;
  };

  problems =
    map (m: "deployed host: failed assertion: ${m}") deployed.failedAssertions
    ++ map (m: "variant: failed assertion: ${m}") variant.failedAssertions
    ++ lib.optional (builtins.length asShipped.failedAssertions != 1 || !(lib.hasInfix "laptopPublicKey" (builtins.head asShipped.failedAssertions)))
      "as shipped (placeholder laptop key): expected exactly the laptopPublicKey assertion to fail, got ${builtins.toJSON asShipped.failedAssertions}"
    ++ lib.optional (!(builtins.any (lib.hasInfix "flashpods.nft") movedLaptop.failedAssertions))
      "moved laptop address: the firewall-literal assertion did not fire (${builtins.toJSON movedLaptop.failedAssertions})";
in
{
  ok = problems == [ ];
  inherit problems;
  flake = {
    nixpkgsUrl = flake.inputs.nixpkgs.url;
    nixosModules = builtins.attrNames outputs.nixosModules;
    nixosConfigurations = builtins.attrNames outputs.nixosConfigurations;
    hostModuleCount = builtins.length hostModules;
    packages = builtins.attrNames outputs.packages;
  };
  files = map (f: lib.removePrefix (toString repo + "/") f) deployed.files;
  externalImports = deployed.external;
  deployed = report deployed.config;
  variant = report variant.config;
  failedAssertions = {
    asShipped = asShipped.failedAssertions;
    movedLaptop = movedLaptop.failedAssertions;
  };
  package = {
    inherit (pkgArgs) pname version npmRebuildFlags dontNpmBuild;
    npmRoot = toString pkgArgs.npmDeps.npmRoot;
    sourceFilter = {
      "cli/flashpods.mjs" = inSource "cli/flashpods.mjs";
      "actors/contract/config.ts" = inSource "actors/contract/config.ts";
      "package-lock.json" = inSource "package-lock.json";
      "schema.sql" = inSource "schema.sql";
      "node_modules/hono/package.json" = inSource "node_modules/hono/package.json";
      "test/e2e/firewall.test.ts" = inSource "test/e2e/firewall.test.ts";
      "nix/flake.nix" = inSource "nix/flake.nix";
      ".flashpods/api-token" = inSource ".flashpods/api-token";
    };
  };
}
