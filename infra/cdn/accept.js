// imgpipe's CloudFront Function (viewer request, /img/* only): Accept, normalised to the three
// variants of core/negotiate.py before the cache lookup, so the cache key holds one of three
// values, never the raw header (whose spellings are many and chosen by the client).
// It must pick what negotiate.variant picks: tests/unit/test_cdn_accept.py runs it under node
// against negotiate.py on browsers' headers and on odd ones. Runtime cloudfront-js-2.0.
var AVIF = 'image/avif,image/webp,*/*';
var WEBP = 'image/webp,*/*';
var OTHER = '*/*';
var MAX_ACCEPT_CHARS = 4096;
// What Python's str.strip() removes (str.isspace), no more: JavaScript's trim() differs.
var EDGES = /^[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;
// What Python's float() accepts (ASCII digits): digits with single underscores between them.
var FLOAT = /^[+-]?(?:(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?|inf|infinity|nan)$/i;

function strip(text) {
    return text.replace(EDGES, '');
}

// The q of an item's parameters, as negotiate._quality reads it: the first q= wins, a
// malformed one is 0, none is 1. NaN counts as above 0 there (float('nan') <= 0 is false).
function quality(params) {
    for (var i = 0; i < params.length; i++) {
        var eq = params[i].indexOf('=');
        var name = eq < 0 ? params[i] : params[i].slice(0, eq);
        if (strip(name).toLowerCase() !== 'q') {
            continue;
        }
        var value = strip(eq < 0 ? '' : params[i].slice(eq + 1));
        if (!FLOAT.test(value)) {
            return 0;
        }
        var lower = value.toLowerCase().replace(/^[+-]/, '');
        if (lower === 'nan') {
            return NaN;
        }
        if (lower === 'inf' || lower === 'infinity') {
            return value.charAt(0) === '-' ? -Infinity : Infinity;
        }
        return parseFloat(value.replace(/_/g, ''));
    }
    return 1;
}

function variant(accept) {
    var avif = false;
    var webp = false;
    var items = accept.slice(0, MAX_ACCEPT_CHARS).split(',');
    for (var i = 0; i < items.length; i++) {
        var parts = items[i].split(';');
        var media = strip(parts[0]).toLowerCase();
        if (media !== 'image/avif' && media !== 'image/webp') {
            continue;
        }
        if (quality(parts.slice(1)) <= 0) {
            continue;
        }
        if (media === 'image/avif') {
            avif = true;
        } else {
            webp = true;
        }
    }
    return avif ? AVIF : webp ? WEBP : OTHER;
}

function handler(event) {
    var request = event.request;
    var accept = request.headers.accept;
    request.headers.accept = { value: variant(accept ? accept.value : '') };
    return request;
}
