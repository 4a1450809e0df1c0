// BlurHash decoder (the published algorithm, written here so the page needs no CDN).
// window.blurhashToCanvas(hash, canvas, width, height) paints the placeholder.
(function () {
  "use strict";
  const CHARS =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

  function decode83(str) {
    let value = 0;
    for (const c of str) {
      const digit = CHARS.indexOf(c);
      if (digit < 0) throw new Error("invalid blurhash");
      value = value * 83 + digit;
    }
    return value;
  }
  const srgbToLinear = (v) => {
    const x = v / 255;
    return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
  };
  const linearToSrgb = (v) => {
    const x = Math.max(0, Math.min(1, v));
    return Math.round(x <= 0.0031308 ? x * 12.92 * 255 : (1.055 * Math.pow(x, 1 / 2.4) - 0.055) * 255);
  };
  const signPow = (v, e) => Math.sign(v) * Math.pow(Math.abs(v), e);

  function decode(hash, width, height) {
    if (!hash || hash.length < 6) throw new Error("invalid blurhash");
    const size = decode83(hash[0]);
    const nx = (size % 9) + 1;
    const ny = Math.floor(size / 9) + 1;
    if (hash.length !== 4 + 2 * nx * ny) throw new Error("invalid blurhash length");
    const maxValue = (decode83(hash[1]) + 1) / 166;
    const colours = [];
    const dc = decode83(hash.slice(2, 6));
    colours.push([srgbToLinear(dc >> 16), srgbToLinear((dc >> 8) & 255), srgbToLinear(dc & 255)]);
    for (let i = 1; i < nx * ny; i++) {
      const v = decode83(hash.slice(4 + i * 2, 6 + i * 2));
      const q = [Math.floor(v / 361), Math.floor(v / 19) % 19, v % 19];
      colours.push(q.map((c) => signPow((c - 9) / 9, 2) * maxValue));
    }
    const pixels = new Uint8ClampedArray(width * height * 4);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let r = 0, g = 0, b = 0;
        for (let j = 0; j < ny; j++) {
          const cy = Math.cos((Math.PI * y * j) / height);
          for (let i = 0; i < nx; i++) {
            const basis = Math.cos((Math.PI * x * i) / width) * cy;
            const c = colours[i + j * nx];
            r += c[0] * basis; g += c[1] * basis; b += c[2] * basis;
          }
        }
        const o = 4 * (x + y * width);
        pixels[o] = linearToSrgb(r); pixels[o + 1] = linearToSrgb(g);
        pixels[o + 2] = linearToSrgb(b); pixels[o + 3] = 255;
      }
    }
    return pixels;
  }

  window.blurhashToCanvas = function (hash, canvas, width = 32, height = 32) {
    try {
      canvas.width = width;
      canvas.height = height;
      const ctx = canvas.getContext("2d");
      ctx.putImageData(new ImageData(decode(hash, width, height), width, height), 0, 0);
      return true;
    } catch (e) {
      return false;
    }
  };
})();
