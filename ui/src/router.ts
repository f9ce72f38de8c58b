// Pages are addressed by the URL's fragment (`#/`, `#/c/NS/ID`), so crtd
// serves one index.html and nothing of a page's state reaches its logs.

export type Route =
  | { page: 'map' }
  | { page: 'container'; namespace: string; id: string }
  | { page: 'signin' };

export function parse(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter((p) => p.length > 0);
  if (parts[0] === 'c' && parts.length === 3) {
    try {
      return { page: 'container', namespace: decodeURIComponent(parts[1]), id: decodeURIComponent(parts[2]) };
    } catch {
      return { page: 'map' };
    }
  }
  if (parts[0] === 'signin') return { page: 'signin' };
  return { page: 'map' };
}

export function navigate(hash: string): void {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = hash;
}
