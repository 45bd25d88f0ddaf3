/**
 * Throw-away certificates for the TLS tests, made with the openssl CLI in a
 * temporary directory: a CA, a server certificate for 127.0.0.1/localhost and a
 * client certificate signed by it, and an unrelated self-signed client certificate.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Paths of the PEM files made by {@link makeTestCertificates}. */
export interface TestCertificates {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  strangerCert: string;
  strangerKey: string;
  read(path: string): Buffer;
  remove(): void;
}

/** Makes the certificates (EC P-256, valid one day). */
export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "dray-tls-"));
  const at = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const key = (name: string) =>
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", at(name));

  key("ca.key");
  openssl(
    "req",
    "-x509",
    "-new",
    "-key",
    at("ca.key"),
    "-sha256",
    "-days",
    "1",
    "-subj",
    "/CN=dray test CA",
    "-out",
    at("ca.pem"),
  );

  const signed = (name: string, cn: string, extensions: string) => {
    key(`${name}.key`);
    openssl("req", "-new", "-key", at(`${name}.key`), "-subj", `/CN=${cn}`, "-out", at(`${name}.csr`));
    writeFileSync(at(`${name}.ext`), extensions);
    openssl(
      "x509",
      "-req",
      "-in",
      at(`${name}.csr`),
      "-CA",
      at("ca.pem"),
      "-CAkey",
      at("ca.key"),
      "-CAcreateserial",
      "-days",
      "1",
      "-sha256",
      "-extfile",
      at(`${name}.ext`),
      "-out",
      at(`${name}.pem`),
    );
  };
  signed("server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  signed("client", "dray-agent", "extendedKeyUsage=clientAuth\n");

  key("stranger.key");
  openssl(
    "req",
    "-x509",
    "-new",
    "-key",
    at("stranger.key"),
    "-sha256",
    "-days",
    "1",
    "-subj",
    "/CN=dray-agent",
    "-addext",
    "extendedKeyUsage=clientAuth",
    "-out",
    at("stranger.pem"),
  );

  return {
    dir,
    caCert: at("ca.pem"),
    serverCert: at("server.pem"),
    serverKey: at("server.key"),
    clientCert: at("client.pem"),
    clientKey: at("client.key"),
    strangerCert: at("stranger.pem"),
    strangerKey: at("stranger.key"),
    read: (path) => readFileSync(path),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
