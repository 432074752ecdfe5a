# Flashpods built by Nix from this repository: the npm dependencies come from package-lock.json
# (importNpmLock: each tarball pinned by the lockfile's own integrity hash, so no extra hash to
# keep in sync), native better-sqlite3 compiled against this Node. No build step: the units run
# `node cli/flashpods.mjs`, which registers tsx and runs the TypeScript sources as they are.
{ lib, buildNpmPackage, importNpmLock, nodejs_20, python3 }:

let
  repo = ../.;
  packageJson = builtins.fromJSON (builtins.readFile (repo + "/package.json"));
  # Top-level entries of the repository that are not part of the program.
  excluded = [ "node_modules" ".flashpods" ".git" ".ci" "nix" "test" "bench" "oom" "result" ];
  src = lib.cleanSourceWith {
    name = "flashpods-src";
    src = repo;
    filter = path: type:
      let
        rel = lib.removePrefix (toString repo + "/") (toString path);
        top = builtins.head (lib.splitString "/" rel);
      in
      !(builtins.elem top excluded);
  };
in
buildNpmPackage {
  pname = packageJson.name;
  inherit (packageJson) version;
  inherit src;
  nodejs = nodejs_20;

  npmDeps = importNpmLock { npmRoot = src; };
  npmConfigHook = importNpmLock.npmConfigHook;

  # Install scripts run only for the packages package.json's allowScripts permits.
  npmRebuildFlags = [ "better-sqlite3" "esbuild" ];
  nativeBuildInputs = [ python3 ];
  dontNpmBuild = true;

  passthru.nodejs = nodejs_20;

  meta = {
    description = "Flashpods: ephemeral Podman job containers for AI coding agents";
    mainProgram = "flashpods";
    platforms = lib.platforms.linux;
  };
}
