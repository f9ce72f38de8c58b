// What integration/tests/webui.rs set up for these tests.
export function env(key: string): string {
  const v = process.env[key];
  if (!v) throw new Error(`${key} is not set: these tests run from integration/tests/webui.rs (cargo test -p crt-integration --test webui)`);
  return v;
}
