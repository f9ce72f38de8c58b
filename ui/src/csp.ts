// crtd serves the page under a Content-Security-Policy that allows no inline
// style but `<style>` elements carrying this page's nonce (a fresh one per
// load, in `<meta name="crt-style-nonce">`). The terminal (xterm.js) and the
// map (Cytoscape.js) make such elements as they draw; this gives every
// `<style>` made by the page's own script the nonce. Imported first, before
// any library makes one.

const meta = document.querySelector<HTMLMetaElement>('meta[name="crt-style-nonce"]');
const nonce = meta?.content && !meta.content.startsWith('__') ? meta.content : '';
meta?.remove();

if (nonce) {
  const create = Document.prototype.createElement;
  Document.prototype.createElement = function (this: Document, tag: string, options?: ElementCreationOptions) {
    const el = create.call(this, tag, options);
    if (tag.toLowerCase() === 'style') el.setAttribute('nonce', nonce);
    return el;
  } as typeof Document.prototype.createElement;
}
